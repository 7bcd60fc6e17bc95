"""Trading personas for Locust: retail traders and market makers driving the gateway's order API.

Run with the metrics plugin: ``locust -f loadgen/trading.py,loadgen/metrics_plugin.py --host URL``.
About 20 users (3 retail : 1 market maker) make roughly 100-300 requests/s against a fast gateway.

Environment overrides:

* ``TRADING_SYMBOLS``: comma-separated symbols to trade, each optionally with its reference price as
  ``SYMBOL:PRICE`` (e.g. ``600000:7.80,000001``); a symbol without a known price trades near 10.00.
  Default: the five symbols of the reference stack with their reference prices.
* ``TRADING_ACCOUNTS``: how many accounts to use, ``ACC0001`` to ``ACCnnnn`` (default 100).
* ``CHAOS_LEDGER_DIR``: a directory for the acknowledgement ledger (loadgen/ledger.py, docs/contracts.md
  section 4): each process appends every acknowledged order (201) and cancel (200) to its own file there.

Failures: a 5xx, any other unexpected status and a connection error or timeout are failures, named
``HTTP <status>`` or after the exception. A 404/409 answering the cancel of an order that has just
filled or been cancelled is normal and counts as a success.
"""

from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from collections.abc import Collection
from typing import Any

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser, ResponseContextManager

from loadgen.ledger import Ledger

REFERENCE_PRICES_CENTS: dict[str, int] = {
    "600000": 780,
    "600036": 3520,
    "601318": 4850,
    "000001": 1130,
    "000002": 890,
}
UNKNOWN_SYMBOL_PRICE_CENTS = 1000
LOT = 100
ORDERS = "POST /orders"
CANCEL = "DELETE /orders/{id}"
ORDER = "GET /orders/{id}"
ACCOUNT = "GET /accounts/{id}"
TERMINAL_STATUSES = frozenset({"filled", "cancelled"})


def parse_symbols(spec: str | None) -> dict[str, int]:
    """Return symbol -> reference price in cents from a ``TRADING_SYMBOLS`` value (None: the defaults)."""
    if not spec or not spec.strip():
        return dict(REFERENCE_PRICES_CENTS)
    symbols: dict[str, int] = {}
    for item in spec.split(","):
        symbol, _, price = item.strip().partition(":")
        if not symbol:
            continue
        if price:
            symbols[symbol] = round(float(price) * 100)
        else:
            symbols[symbol] = REFERENCE_PRICES_CENTS.get(symbol, UNKNOWN_SYMBOL_PRICE_CENTS)
    if not symbols:
        raise ValueError(f"TRADING_SYMBOLS={spec!r} names no symbol; expected e.g. '600000:7.80,000001'")
    return symbols


def account_ids(count: int) -> list[str]:
    """Return the account ids ``ACC0001`` .. ``ACC{count:04d}``."""
    if count < 1:
        raise ValueError(f"TRADING_ACCOUNTS must be at least 1, got {count}")
    return [f"ACC{i:04d}" for i in range(1, count + 1)]


def _accounts_from_env(value: str) -> list[str]:
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"TRADING_ACCOUNTS must be a whole number of accounts, got {value!r}") from None
    return account_ids(count)


SYMBOLS = parse_symbols(os.environ.get("TRADING_SYMBOLS"))
ACCOUNTS = _accounts_from_env(os.environ.get("TRADING_ACCOUNTS", "100"))
# client_order_id = this process's random prefix + a counter: unique across workers and restarts.
_CLIENT_ORDER_PREFIX = uuid.uuid4().hex[:10]
_client_order_ids = itertools.count(1)
# Disabled (every call returns at once) unless CHAOS_LEDGER_DIR is set; opens its file per process.
LEDGER = Ledger.from_env()


def limit_price_cents(reference_cents: int, side: str, aggressiveness: float) -> int:
    """Return a limit price near the reference: a band of ±0.3% (at least 2 ticks), shifted towards
    the other side by ``aggressiveness`` (0 passive .. 1 crossing), so buys and sells meet and fill."""
    band = max(2, round(reference_cents * 0.003))
    shift = round(band * aggressiveness)
    offset = random.randint(-band, band) + (shift if side == "buy" else -shift)
    return max(1, reference_cents + offset)


class _Trader(FastHttpUser):
    """Shared client behaviour: order entry, cancel and queries with uniform failure accounting."""

    abstract = True
    # Faults must show up as failures within a run's sampling window, not after a 60 s default.
    network_timeout = 5.0
    connection_timeout = 2.0
    aggressiveness = 0.3

    def on_start(self) -> None:
        self.account = random.choice(ACCOUNTS)
        self.open_orders: list[str] = []

    def place_order(self, symbol: str, side: str) -> dict[str, Any] | None:
        """Place a limit order of whole lots near the symbol's reference price; return the order."""
        body = {
            "account": self.account,
            "symbol": symbol,
            "side": side,
            "qty": LOT * random.randint(1, 10),
            "price": limit_price_cents(SYMBOLS[symbol], side, self.aggressiveness) / 100,
            "client_order_id": f"{_CLIENT_ORDER_PREFIX}-{next(_client_order_ids)}",
        }
        with self.client.post("/orders", json=body, name=ORDERS, catch_response=True) as resp:
            arrived = time.time()
            order = _judge(resp, ok=(201,))
        if order is not None:
            LEDGER.ack(order, body, arrived)
        if order is not None and order.get("status") not in TERMINAL_STATUSES:
            self.open_orders.append(str(order["order_id"]))
        return order

    def cancel_order(self, order_id: str) -> None:
        # 404/409: the order filled or was cancelled while we decided; normal on a live book. The
        # order is forgotten even when the cancel failed, so a dead gateway cannot trap a loop here.
        with self.client.delete(f"/orders/{order_id}", name=CANCEL, catch_response=True) as resp:
            arrived = time.time()
            _judge(resp, ok=(200,), benign=(404, 409))
        if resp.status_code == 200:  # acknowledged, even if its body were not the order
            LEDGER.cancel(order_id, arrived)
        self._forget(order_id)

    def query_order(self, order_id: str) -> None:
        with self.client.get(f"/orders/{order_id}", name=ORDER, catch_response=True) as resp:
            order = _judge(resp, ok=(200,))
        if order is not None and order.get("status") in TERMINAL_STATUSES:
            self._forget(order_id)

    def query_account(self) -> None:
        with self.client.get(f"/accounts/{self.account}", name=ACCOUNT, catch_response=True) as resp:
            _judge(resp, ok=(200,))

    def _forget(self, order_id: str) -> None:
        if order_id in self.open_orders:
            self.open_orders.remove(order_id)


class RetailTrader(_Trader):
    """Mostly looks at the account and its orders, now and then places a small limit order."""

    weight = 3
    wait_time = between(0.3, 1.5)

    @task(5)
    def check_account(self) -> None:
        self.query_account()

    @task(3)
    def check_order(self) -> None:
        if self.open_orders:
            self.query_order(random.choice(self.open_orders))
        else:
            self.query_account()

    @task(2)
    def place_limit_order(self) -> None:
        self.place_order(random.choice(list(SYMBOLS)), random.choice(("buy", "sell")))
        del self.open_orders[:-20]  # a retail client only keeps an eye on its recent orders


class MarketMaker(_Trader):
    """Quotes both sides near the reference price, cancels some of its resting orders, checks them."""

    weight = 1
    wait_time = between(0.02, 0.1)
    aggressiveness = 0.0
    max_open_orders = 40

    @task(6)
    def quote(self) -> None:
        symbol = random.choice(list(SYMBOLS))
        self.place_order(symbol, "buy")
        self.place_order(symbol, "sell")
        while len(self.open_orders) > self.max_open_orders:
            self.cancel_order(self.open_orders[0])

    @task(3)
    def cancel_one(self) -> None:
        if self.open_orders:
            self.cancel_order(random.choice(self.open_orders))

    @task(2)
    def check_order(self) -> None:
        if self.open_orders:
            self.query_order(random.choice(self.open_orders))

    @task(1)
    def check_account(self) -> None:
        self.query_account()


def _judge(resp: ResponseContextManager, ok: Collection[int], benign: Collection[int] = ()) -> dict[str, Any] | None:
    """Mark the response a success or failure; return its JSON object for an ``ok`` status."""
    body, failure = _verdict(resp, ok, benign)
    marker: Any = resp  # Locust leaves success()/failure() untyped
    if failure is None:
        marker.success()
    else:
        marker.failure(failure)
    return body


def _verdict(
    resp: ResponseContextManager, ok: Collection[int], benign: Collection[int]
) -> tuple[dict[str, Any] | None, Exception | str | None]:
    """Return (JSON object of an ``ok`` answer, failure or None)."""
    status = resp.status_code
    if status in benign:
        return None, None
    if status not in ok:
        error = getattr(resp, "error", None)
        # status 0: no HTTP answer at all; keep the exception itself (ConnectionRefusedError(...)).
        return None, error if status == 0 and isinstance(error, Exception) else f"HTTP {status}"
    try:
        body = resp.json()
    except (ValueError, TypeError):  # TypeError: no body at all
        return None, f"HTTP {status} with a body that is not JSON"
    if not isinstance(body, dict):
        return None, f"HTTP {status} with a body that is not a JSON object"
    return body, None
