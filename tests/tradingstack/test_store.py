"""The Redis store against a real redis-server: fencing, conservation of cash and shares, read-back."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time

import pytest

from tests.support.helpers import free_port
from tests.tradingstack.support import order_request, place_order, run_store
from tradingstack.book import OrderBook
from tradingstack.orders import ACCOUNTS, SEED_CASH_CENTS, SEED_SHARES, SYMBOLS, OrderRequest, Side
from tradingstack.records import EPOCH_KEY, cancel_ops, open_key, order_ops
from tradingstack.store import (
    FencedError,
    OrderClosedError,
    Store,
    StoreUnavailableError,
    UnknownOrderError,
    connect,
)

pytestmark = [pytest.mark.infra, pytest.mark.slow]


def test_seeding_happens_once(redis_server: tuple[str, int]) -> None:
    async def body(store: Store) -> None:
        assert await store.seed() is False
        account = await store.get_account("ACC0100")
        assert account == {
            "account": "ACC0100",
            "cash": 10_000_000.0,
            "positions": dict.fromkeys(SYMBOLS, SEED_SHARES),
        }
        assert await store.get_account("ACC0101") is None
        assert await store.totals() == (SEED_CASH_CENTS * 100, dict.fromkeys(SYMBOLS, SEED_SHARES * 100))

    run_store(redis_server, body)


def test_orders_fills_and_accounts_are_written_together(redis_server: tuple[str, int]) -> None:
    async def body(store: Store) -> None:
        epoch = await store.begin_epoch()
        book = OrderBook("600000")
        sell = await place_order(store, book, epoch, order_request("ACC0001", "sell", 100, 1050))
        buy = await place_order(store, book, epoch, order_request("ACC0002", "buy", 30, 1060))
        assert (sell["status"], buy["status"]) == ("new", "filled")
        fill = {"fill_id": f"{buy['order_id']}-1", "qty": 30, "price": 10.5, "at": buy["ack_at"]}
        assert buy["fills"] == [{**fill, "buy_order_id": buy["order_id"], "sell_order_id": sell["order_id"]}]
        stored = await store.get_order(int(str(sell["order_id"])))
        assert stored is not None
        assert (stored["filled_qty"], stored["status"], stored["fills"]) == (
            30,
            "partially_filled",
            buy["fills"],
        )
        assert await store.get_order(int(str(buy["order_id"]))) == buy
        seller, buyer = await store.get_account("ACC0001"), await store.get_account("ACC0002")
        assert seller is not None and buyer is not None
        assert seller["cash"] == 10_000_000 + 315.0 and seller["positions"]["600000"] == SEED_SHARES - 30
        assert buyer["cash"] == 10_000_000 - 315.0 and buyer["positions"]["600000"] == SEED_SHARES + 30
        open_orders = await store.open_orders("600000")
        assert [(o.order_id, o.remaining) for o in open_orders] == [(int(str(sell["order_id"])), 70)]

    run_store(redis_server, body)


def test_cancel_closes_an_open_order_once(redis_server: tuple[str, int]) -> None:
    async def body(store: Store) -> None:
        epoch = await store.begin_epoch()
        order = await place_order(store, OrderBook("600036"), epoch, order_request("ACC0003", "buy", 5, 999, "600036"))
        order_id = int(str(order["order_id"]))
        cancelled = await store.cancel_order(epoch, order_id)
        assert cancelled == {**order, "status": "cancelled"}
        assert await store.open_orders("600036") == []
        with pytest.raises(OrderClosedError, match="already cancelled"):
            await store.cancel_order(epoch, order_id)
        with pytest.raises(UnknownOrderError):
            await store.cancel_order(epoch, 999_999)

    run_store(redis_server, body)


def test_client_order_ids_are_recorded(redis_server: tuple[str, int]) -> None:
    async def body(store: Store) -> None:
        epoch = await store.begin_epoch()
        request = OrderRequest("ACC0004", "601318", "sell", 1, 100, client_order_id="abc-1")
        order_id = await store.next_order_id(epoch)
        await store.commit_order(epoch, order_id, request, [], time.time())
        assert await store.find_client_order("ACC0004", "abc-1") == order_id
        assert await store.find_client_order("ACC0005", "abc-1") is None

    run_store(redis_server, body)


def test_a_stale_epoch_can_write_nothing(redis_server: tuple[str, int]) -> None:
    async def body(store: Store) -> None:
        old = await store.begin_epoch()
        resting = await place_order(store, OrderBook("600000"), old, order_request("ACC0001", "sell", 10, 1000))
        new = await store.begin_epoch()
        assert new == old + 1
        before = await store.redis.dbsize()
        with pytest.raises(FencedError):
            await store.next_order_id(old)
        with pytest.raises(FencedError):
            await store.commit_order(old, 99, order_request("ACC0002", "buy", 1, 1000), [], time.time())
        with pytest.raises(FencedError):
            await store.cancel_order(old, int(str(resting["order_id"])))
        assert await store.redis.dbsize() == before
        assert await store.get_order(99) is None
        assert await store.get_order(int(str(resting["order_id"]))) == resting
        assert await store.next_order_id(new) == int(str(resting["order_id"])) + 1

    run_store(redis_server, body)


def test_an_epoch_change_between_check_and_cancel_aborts_the_write(redis_server: tuple[str, int]) -> None:
    """The old leader pauses after its epoch check; the new leader's INCR still stops its EXEC."""

    async def body(store: Store) -> None:
        old = await store.begin_epoch()
        order_id = await store.next_order_id(old)
        await store.commit_order(old, order_id, order_request("ACC0002", "buy", 1, 1000), [], time.time())
        rival = Store(connect(redis_server[0]))
        real_fence = store._fence

        async def fence_then_lose_leadership(pipe: object, epoch: int) -> None:
            await real_fence(pipe, epoch)  # the check passes...
            await rival.begin_epoch()  # ...and a new leader is elected before EXEC

        store._fence = fence_then_lose_leadership  # type: ignore[method-assign]
        try:
            with pytest.raises(FencedError):
                await store.cancel_order(old, order_id)
        finally:
            await rival.close()
        order = await store.get_order(order_id)
        assert order is not None and order["status"] == "new"
        assert int(await store.redis.get(EPOCH_KEY) or 0) == old + 1

    run_store(redis_server, body)


def test_a_batch_applies_in_order_in_one_call_and_not_at_all_when_fenced(redis_server: tuple[str, int]) -> None:
    async def body(store: Store) -> None:
        epoch = await store.begin_epoch()
        last = await store.reserve_order_ids(epoch, 3)
        first_ops, _ = order_ops(epoch, last - 2, order_request("ACC0003", "sell", 5, 700), [], time.time())
        # The cancel is queued behind the order it cancels: applied in one batch, in order.
        await store.apply(epoch, first_ops + cancel_ops(last - 2, "600000"))
        stored = await store.get_order(last - 2)
        assert stored is not None and stored["status"] == "cancelled"
        assert await store.redis.zrange(open_key("600000"), 0, -1) == []
        await store.begin_epoch()
        ops, _ = order_ops(epoch, last - 1, order_request("ACC0003", "sell", 5, 700), [], time.time())
        with pytest.raises(FencedError):
            await store.apply(epoch, ops)
        assert await store.get_order(last - 1) is None
        assert await store.reserve_order_ids(epoch + 1, 10) == last + 10

    run_store(redis_server, body)


@pytest.mark.parametrize("seed", [1, 2])
def test_fills_conserve_cash_and_shares(redis_server: tuple[str, int], seed: int) -> None:
    async def body(store: Store) -> None:
        rng = random.Random(seed)
        epoch = await store.begin_epoch()
        books = {symbol: OrderBook(symbol) for symbol in SYMBOLS}
        fills = 0
        for _ in range(300):
            symbol = rng.choice(SYMBOLS)
            side: Side = rng.choice(["buy", "sell"])
            request = order_request(
                rng.choice(ACCOUNTS[:10]), side, rng.randint(1, 500), rng.randint(995, 1005), symbol
            )
            order = await place_order(store, books[symbol], epoch, request)
            fills += len(order["fills"])  # type: ignore[arg-type]
        assert fills > 50, "the random flow should trade"
        assert await store.totals() == (SEED_CASH_CENTS * 100, dict.fromkeys(SYMBOLS, SEED_SHARES * 100))
        for symbol, book in books.items():
            stored = await store.open_orders(symbol)
            expected = sorted(book.orders("buy") + book.orders("sell"), key=lambda o: o.order_id)
            assert stored == expected

    run_store(redis_server, body)


def test_an_unreachable_redis_fails_fast() -> None:
    async def body() -> float:
        store = Store(connect(f"127.0.0.1:{free_port()}"))
        started = time.monotonic()
        try:
            with pytest.raises(StoreUnavailableError):
                await store.get_order(1)
        finally:
            await store.close()
        return time.monotonic() - started

    assert asyncio.run(body()) < 1.0


def test_a_frozen_redis_fails_within_the_socket_timeout(redis_server: tuple[str, int]) -> None:
    async def body(store: Store) -> float:
        await store.ping()  # an open connection, so the freeze hits a read, not the connect
        os.kill(redis_server[1], signal.SIGSTOP)
        started = time.monotonic()
        try:
            with pytest.raises(StoreUnavailableError):
                await store.get_order(1)
        finally:
            os.kill(redis_server[1], signal.SIGCONT)
        return time.monotonic() - started

    assert run_store(redis_server, body) < 2.0
