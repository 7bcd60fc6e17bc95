"""Unit tests of the price-time-priority order book."""

from __future__ import annotations

import random

import pytest

from tradingstack.book import BookError, Fill, OrderBook, RestingOrder
from tradingstack.orders import Side


def _book(*orders: tuple[int, Side, int, int]) -> OrderBook:
    book = OrderBook("600000")
    for order_id, side, price, qty in orders:
        assert book.add(order_id, f"ACC{order_id:04d}", side, price, qty) == []
    return book


def test_an_order_that_does_not_cross_rests() -> None:
    book = _book((1, "buy", 1000, 10), (2, "sell", 1010, 5))
    assert (book.best_bid(), book.best_ask()) == (1000, 1010)
    assert book.depth("buy") == [(1000, 10)]
    assert book.depth("sell") == [(1010, 5)]
    assert len(book) == 2


def test_a_crossing_buy_fills_at_the_resting_price() -> None:
    book = _book((1, "sell", 1000, 10))
    fills = book.add(2, "ACC0002", "buy", 1050, 10)
    assert fills == [Fill(2, 1, "ACC0002", "ACC0001", 10, 1000, maker_order_id=1, maker_remaining=0)]
    assert len(book) == 0
    assert (book.best_bid(), book.best_ask()) == (None, None)


def test_a_crossing_sell_fills_at_the_resting_price() -> None:
    book = _book((1, "buy", 1000, 10))
    fills = book.add(2, "ACC0002", "sell", 990, 4)
    assert fills == [Fill(1, 2, "ACC0001", "ACC0002", 4, 1000, maker_order_id=1, maker_remaining=6)]
    resting = book.get(1)
    assert resting is not None and (resting.remaining, resting.filled_qty) == (6, 4)


def test_the_remainder_of_a_partially_filled_incoming_order_rests() -> None:
    book = _book((1, "sell", 1000, 3))
    fills = book.add(2, "ACC0002", "buy", 1000, 10)
    assert [f.qty for f in fills] == [3]
    resting = book.get(2)
    assert resting is not None and (resting.qty, resting.remaining) == (10, 7)
    assert book.best_bid() == 1000 and book.best_ask() is None


def test_better_prices_match_first_and_a_sweep_walks_the_levels() -> None:
    book = _book((1, "sell", 1020, 5), (2, "sell", 1000, 5), (3, "sell", 1010, 5))
    fills = book.add(4, "ACC0004", "buy", 1015, 12)
    assert [(f.sell_order_id, f.qty, f.price_cents) for f in fills] == [(2, 5, 1000), (3, 5, 1010)]
    assert book.depth("buy") == [(1015, 2)]
    assert book.depth("sell") == [(1020, 5)]


def test_earlier_orders_at_a_price_match_first() -> None:
    book = _book((1, "buy", 1000, 5), (2, "buy", 1000, 5), (3, "buy", 1000, 5))
    fills = book.add(4, "ACC0004", "sell", 1000, 7)
    assert [(f.buy_order_id, f.qty, f.maker_remaining) for f in fills] == [(1, 5, 0), (2, 2, 3)]
    assert [o.order_id for o in book.orders("buy")] == [2, 3]


def test_bids_match_highest_first() -> None:
    book = _book((1, "buy", 990, 5), (2, "buy", 1010, 5), (3, "buy", 1000, 5))
    fills = book.add(4, "ACC0004", "sell", 900, 15)
    assert [(f.buy_order_id, f.price_cents) for f in fills] == [(2, 1010), (3, 1000), (1, 990)]


def test_a_limit_price_stops_the_sweep() -> None:
    book = _book((1, "sell", 1000, 5), (2, "sell", 1001, 5))
    fills = book.add(3, "ACC0003", "buy", 1000, 8)
    assert [(f.sell_order_id, f.qty) for f in fills] == [(1, 5)]
    assert book.depth("sell") == [(1001, 5)]
    assert book.depth("buy") == [(1000, 3)]


def test_cancel_removes_the_order_and_keeps_the_others_in_priority() -> None:
    book = _book((1, "buy", 1000, 5), (2, "buy", 1000, 5), (3, "buy", 1000, 5))
    cancelled = book.cancel(2)
    assert cancelled is not None and cancelled.order_id == 2
    assert book.cancel(2) is None
    assert [o.order_id for o in book.orders("buy")] == [1, 3]
    assert book.depth("buy") == [(1000, 10)]


def test_cancelling_the_last_order_of_a_level_removes_the_level() -> None:
    book = _book((1, "sell", 1000, 5), (2, "sell", 1010, 5))
    book.cancel(1)
    assert book.best_ask() == 1010
    book.cancel(2)
    assert book.best_ask() is None and book.depth("sell") == []


def test_cancel_of_a_partially_filled_order_returns_what_was_left() -> None:
    book = _book((1, "sell", 1000, 10))
    book.add(2, "ACC0002", "buy", 1000, 4)
    cancelled = book.cancel(1)
    assert cancelled is not None and (cancelled.remaining, cancelled.filled_qty) == (6, 4)


def test_unknown_cancel_returns_none() -> None:
    assert OrderBook("600000").cancel(42) is None


@pytest.mark.parametrize(
    ("order_id", "price", "qty"),
    [(1, 1000, 5), (9, 0, 5), (9, 1000, 0), (9, -5, 5)],
    ids=["duplicate id", "zero price", "zero qty", "negative price"],
)
def test_invalid_orders_are_refused(order_id: int, price: int, qty: int) -> None:
    book = _book((1, "buy", 1000, 5))
    with pytest.raises(BookError):
        book.add(order_id, "ACC0009", "sell", price, qty)
    assert book.depth("buy") == [(1000, 5)]


def test_restore_keeps_time_priority_and_never_matches() -> None:
    book = OrderBook("600000")
    book.restore(RestingOrder(7, "ACC0001", "sell", 1000, 10, 4))
    book.restore(RestingOrder(9, "ACC0002", "sell", 1000, 5, 5))
    book.restore(RestingOrder(8, "ACC0003", "buy", 990, 5, 5))
    assert [o.order_id for o in book.orders("sell")] == [7, 9]
    fills = book.add(10, "ACC0004", "buy", 1000, 6)
    assert [(f.sell_order_id, f.qty) for f in fills] == [(7, 4), (9, 2)]


@pytest.mark.parametrize(
    "order",
    [
        RestingOrder(2, "ACC0002", "buy", 1000, 5, 5),
        RestingOrder(2, "ACC0002", "buy", 1001, 5, 5),
        RestingOrder(2, "ACC0002", "sell", 900, 5, 0),
        RestingOrder(2, "ACC0002", "sell", 900, 5, 6),
    ],
    ids=["touching", "crossing", "nothing left", "more left than ordered"],
)
def test_restore_refuses_orders_that_could_not_have_rested(order: RestingOrder) -> None:
    book = OrderBook("600000")
    book.restore(RestingOrder(1, "ACC0001", "sell", 1000, 5, 5))
    with pytest.raises(BookError):
        book.restore(order)


@pytest.mark.parametrize("seed", range(5))
def test_random_flow_never_leaves_a_crossed_book_and_accounts_for_every_share(seed: int) -> None:
    rng = random.Random(seed)
    book = OrderBook("600000")
    submitted: dict[int, int] = {}
    filled: dict[int, int] = {}
    cancelled: dict[int, int] = {}
    for order_id in range(1, 2001):
        if submitted and rng.random() < 0.15:
            victim = rng.choice(list(submitted))
            gone = book.cancel(victim)
            if gone is not None:
                cancelled[victim] = gone.remaining
            continue
        side: Side = rng.choice(["buy", "sell"])
        qty = rng.randint(1, 50)
        submitted[order_id] = qty
        for fill in book.add(order_id, f"ACC{rng.randint(1, 100):04d}", side, rng.randint(990, 1010), qty):
            assert fill.qty > 0
            assert fill.buy_order_id != fill.sell_order_id
            filled[fill.buy_order_id] = filled.get(fill.buy_order_id, 0) + fill.qty
            filled[fill.sell_order_id] = filled.get(fill.sell_order_id, 0) + fill.qty
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask, f"crossed book after order {order_id}: {bid} >= {ask}"
    for order_id, qty in submitted.items():
        resting = book.get(order_id)
        left = resting.remaining if resting else cancelled.get(order_id, 0)
        assert filled.get(order_id, 0) + left == qty, f"order {order_id} lost shares"
    assert sum(qty for _, qty in book.depth("buy")) == sum(o.remaining for o in book.orders("buy"))
