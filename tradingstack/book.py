"""A price-time-priority limit order book for one symbol: pure data, no I/O, prices in integer cents."""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

from tradingstack.orders import Side


@dataclass
class RestingOrder:
    """An order (or what is left of it) waiting in the book."""

    order_id: int
    account: str
    side: Side
    price_cents: int
    qty: int
    remaining: int

    @property
    def filled_qty(self) -> int:
        return self.qty - self.remaining


@dataclass(frozen=True)
class Fill:
    """One trade between an incoming order and a resting one, at the resting order's price."""

    buy_order_id: int
    sell_order_id: int
    buy_account: str
    sell_account: str
    qty: int
    price_cents: int
    maker_order_id: int
    maker_remaining: int


class BookError(ValueError):
    """A request the book cannot apply (duplicate id, bad quantity, crossing restore)."""


class _Side:
    """One side of the book: FIFO queues per price level plus the sorted list of prices."""

    def __init__(self) -> None:
        self.prices: list[int] = []
        self.levels: dict[int, deque[RestingOrder]] = {}

    def append(self, order: RestingOrder) -> None:
        level = self.levels.get(order.price_cents)
        if level is None:
            level = self.levels[order.price_cents] = deque()
            bisect.insort(self.prices, order.price_cents)
        level.append(order)

    def remove(self, order: RestingOrder) -> None:
        level = self.levels[order.price_cents]
        level.remove(order)
        if not level:
            self._drop_level(order.price_cents)

    def pop_front(self, price: int) -> None:
        level = self.levels[price]
        level.popleft()
        if not level:
            self._drop_level(price)

    def _drop_level(self, price: int) -> None:
        del self.levels[price]
        del self.prices[bisect.bisect_left(self.prices, price)]


class OrderBook:
    """Bids and asks of one symbol. `add` matches first, then rests what is left."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._bids = _Side()
        self._asks = _Side()
        self._orders: dict[int, RestingOrder] = {}

    def best_bid(self) -> int | None:
        return self._bids.prices[-1] if self._bids.prices else None

    def best_ask(self) -> int | None:
        return self._asks.prices[0] if self._asks.prices else None

    def get(self, order_id: int) -> RestingOrder | None:
        return self._orders.get(order_id)

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def depth(self, side: Side) -> list[tuple[int, int]]:
        """(price, total remaining qty) per level, best price first."""
        book = self._bids if side == "buy" else self._asks
        prices = reversed(book.prices) if side == "buy" else iter(book.prices)
        return [(p, sum(o.remaining for o in book.levels[p])) for p in prices]

    def orders(self, side: Side) -> list[RestingOrder]:
        """Resting orders of one side in matching priority (best price, then oldest)."""
        book = self._bids if side == "buy" else self._asks
        prices = reversed(book.prices) if side == "buy" else iter(book.prices)
        return [o for p in prices for o in book.levels[p]]

    def add(self, order_id: int, account: str, side: Side, price_cents: int, qty: int) -> list[Fill]:
        """Match an incoming limit order against the opposite side; rest any remainder."""
        self._check_new(order_id, price_cents, qty)
        remaining = qty
        fills: list[Fill] = []
        opposite = self._asks if side == "buy" else self._bids
        while remaining > 0 and opposite.prices:
            best = opposite.prices[0] if side == "buy" else opposite.prices[-1]
            if (side == "buy" and best > price_cents) or (side == "sell" and best < price_cents):
                break
            maker = opposite.levels[best][0]
            traded = min(remaining, maker.remaining)
            remaining -= traded
            maker.remaining -= traded
            if maker.remaining == 0:
                opposite.pop_front(best)
                del self._orders[maker.order_id]
            buy, sell = (order_id, maker.order_id) if side == "buy" else (maker.order_id, order_id)
            buyer, seller = (account, maker.account) if side == "buy" else (maker.account, account)
            fills.append(Fill(buy, sell, buyer, seller, traded, best, maker.order_id, maker.remaining))
        if remaining > 0:
            self._rest(RestingOrder(order_id, account, side, price_cents, qty, remaining))
        return fills

    def restore(self, order: RestingOrder) -> None:
        """Put back an order that was resting before (rebuild from storage); never matches.

        Orders must be restored oldest first so that time priority survives a rebuild.
        """
        self._check_new(order.order_id, order.price_cents, order.qty)
        if not 0 < order.remaining <= order.qty:
            raise BookError(f"order {order.order_id}: remaining {order.remaining} not in 1..{order.qty}")
        best = self.best_ask() if order.side == "buy" else self.best_bid()
        crosses = best is not None and (
            (order.side == "buy" and order.price_cents >= best) or (order.side == "sell" and order.price_cents <= best)
        )
        if crosses:
            raise BookError(f"order {order.order_id} at {order.price_cents} would cross the book at {best}")
        self._rest(order)

    def cancel(self, order_id: int) -> RestingOrder | None:
        """Remove a resting order; returns it, or None when it is not in the book."""
        order = self._orders.pop(order_id, None)
        if order is not None:
            (self._bids if order.side == "buy" else self._asks).remove(order)
        return order

    def _check_new(self, order_id: int, price_cents: int, qty: int) -> None:
        if order_id in self._orders:
            raise BookError(f"order {order_id} is already in the book")
        if price_cents <= 0 or qty <= 0:
            raise BookError(f"order {order_id}: price and qty must be positive")

    def _rest(self, order: RestingOrder) -> None:
        self._orders[order.order_id] = order
        (self._bids if order.side == "buy" else self._asks).append(order)
