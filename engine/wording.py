"""Words by what the stack declares: trading wording and the CSRC thresholds only for a trading system.

A stack description (or a drill) declares `trading: true` when it is a securities trading system; its
reports then speak of orders and trading and compare outages with the regulatory thresholds. Any
other system gets neutral words: requests, outage. Journals written before the declaration existed
(schema 1) carry none: the built-in reference stack, a trading system, is read as one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REFERENCE_STACK = "reference"


@dataclass(frozen=True)
class Wording:
    """The nouns reports use for what the load sends and what the ledger reconciles."""

    trading: bool

    @property
    def order(self) -> str:
        return "order" if self.trading else "request"

    @property
    def orders(self) -> str:
        return "orders" if self.trading else "requests"

    @property
    def Orders(self) -> str:  # the capitalised form, for labels
        return "Orders" if self.trading else "Requests"

    def count(self, n: int, what: str = "") -> str:
        """'3 acknowledged orders', '1 acknowledged request'."""
        noun = self.order if n == 1 else self.orders
        return f"{n:,} {what + ' ' if what else ''}{noun}"


def declares_trading(stack: Mapping[str, Any]) -> bool:
    """Whether a journal's stack summary declares a trading system (schema 1: the reference stack did)."""
    declared = stack.get("trading")
    if isinstance(declared, bool):
        return declared
    return stack.get("name") == REFERENCE_STACK


def for_stack(stack: Mapping[str, Any]) -> Wording:
    return Wording(declares_trading(stack))
