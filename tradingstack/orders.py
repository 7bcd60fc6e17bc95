"""The order vocabulary shared by gateway, matcher and store: accounts, symbols, prices, validation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Side = Literal["buy", "sell"]

SYMBOLS: tuple[str, ...] = ("600000", "600036", "601318", "000001", "000002")
ACCOUNTS: tuple[str, ...] = tuple(f"ACC{n:04d}" for n in range(1, 101))
SEED_CASH_CENTS = 10_000_000_00
SEED_SHARES = 100_000

MAX_QTY = 1_000_000_000
MAX_PRICE_CENTS = 100_000_000_00
_CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


class OrderRejected(ValueError):
    """An order request that cannot be accepted; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class OrderRequest:
    """A validated request to place a limit order (price in integer cents)."""

    account: str
    symbol: str
    side: Side
    qty: int
    price_cents: int
    client_order_id: str | None = None

    def to_internal(self) -> dict[str, Any]:
        """The body the gateway sends to the matcher's internal API."""
        return {
            "account": self.account,
            "symbol": self.symbol,
            "side": self.side,
            "qty": self.qty,
            "price_cents": self.price_cents,
            "client_order_id": self.client_order_id,
        }


def cents_to_price(cents: int) -> float:
    """Integer cents → the decimal number used in JSON (exact for 2 decimals: 1234 → 12.34)."""
    return cents / 100


def price_to_cents(value: object) -> int:
    """A JSON price (number with at most 2 decimals, > 0) → integer cents; raises OrderRejected."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise OrderRejected(f"price must be a number, got {value!r}")
    try:
        exact = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        cents = exact * 100
    except InvalidOperation as exc:
        raise OrderRejected(f"price {value!r} is not a decimal number") from exc
    if not cents.is_finite() or cents != cents.to_integral_value():
        raise OrderRejected(f"price {value} has more than 2 decimals")
    if not 0 < cents <= MAX_PRICE_CENTS:
        raise OrderRejected(f"price must be > 0 and <= {MAX_PRICE_CENTS // 100}, got {value}")
    return int(cents)


def _field(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise OrderRejected(f"missing field {name!r}")
    return body[name]


def _common(body: object, price_field: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OrderRejected("body must be a JSON object")
    allowed = {"account", "symbol", "side", "qty", price_field, "client_order_id"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise OrderRejected(f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {sorted(allowed)}")
    account, symbol, side, qty = (_field(body, k) for k in ("account", "symbol", "side", "qty"))
    if not isinstance(account, str):
        raise OrderRejected("account must be a string like 'ACC0001'")
    if not isinstance(symbol, str):
        raise OrderRejected("symbol must be a string like '600000'")
    if side not in ("buy", "sell"):
        raise OrderRejected(f"side must be 'buy' or 'sell', got {side!r}")
    if isinstance(qty, bool) or not isinstance(qty, int) or not 0 < qty <= MAX_QTY:
        raise OrderRejected(f"qty must be an integer between 1 and {MAX_QTY}, got {qty!r}")
    client_order_id = body.get("client_order_id")
    if client_order_id is not None and (
        not isinstance(client_order_id, str) or not _CLIENT_ORDER_ID.match(client_order_id)
    ):
        raise OrderRejected("client_order_id must be 1-64 characters of A-Z a-z 0-9 . _ : -")
    if account not in ACCOUNTS:
        raise OrderRejected(f"unknown account {account!r} (ACC0001 to ACC0100)", status=404)
    if symbol not in SYMBOLS:
        raise OrderRejected(f"unknown symbol {symbol!r}; known: {' '.join(SYMBOLS)}", status=404)
    return {
        "account": account,
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "client_order_id": client_order_id,
    }


def parse_public(body: object) -> OrderRequest:
    """Validate a gateway `POST /orders` body (price as a decimal number)."""
    fields = _common(body, "price")
    assert isinstance(body, dict)
    return OrderRequest(price_cents=price_to_cents(_field(body, "price")), **fields)


def parse_internal(body: object) -> OrderRequest:
    """Validate a matcher `POST /internal/orders` body (price already in integer cents)."""
    fields = _common(body, "price_cents")
    assert isinstance(body, dict)
    cents = _field(body, "price_cents")
    if isinstance(cents, bool) or not isinstance(cents, int) or not 0 < cents <= MAX_PRICE_CENTS:
        raise OrderRejected(f"price_cents must be an integer between 1 and {MAX_PRICE_CENTS}, got {cents!r}")
    return OrderRequest(price_cents=cents, **fields)


def parse_order_id(text: str) -> int | None:
    """A path segment → order id, or None when it cannot name an order."""
    return int(text) if text.isdigit() and len(text) <= 18 and int(text) > 0 else None
