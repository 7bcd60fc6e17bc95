"""The reference stack's audit on a real Redis: clean after real matching, and each seeded violation caught."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.tradingstack.support import order_request, place_order, run_store
from tradingstack.audit import audit
from tradingstack.book import OrderBook
from tradingstack.records import FILLS_LOG_KEY, account_key, client_order_key, open_key, order_key
from tradingstack.store import Store

pytestmark = [pytest.mark.infra, pytest.mark.slow]


async def _trade(store: Store) -> list[dict[str, Any]]:
    """A few orders that rest, fill fully and fill partially, as the matcher would write them."""
    epoch = await store.begin_epoch()
    book = OrderBook("600000")
    placed = [
        await place_order(store, book, epoch, order_request("ACC0001", "sell", 300, 1000)),
        await place_order(store, book, epoch, order_request("ACC0002", "buy", 100, 1000)),  # fills part of the sell
        await place_order(store, book, epoch, order_request("ACC0003", "buy", 50, 990)),  # rests below the ask
    ]
    await store.redis.set(client_order_key("ACC0004", "c-1"), 999)  # a client id nobody used: ignored
    return placed


def run_audit_after(
    redis_server: tuple[str, int], corrupt: Callable[[Store, list[dict[str, Any]]], Awaitable[None]]
) -> dict[str, Any]:
    async def body(store: Store) -> dict[str, Any]:
        placed = await _trade(store)
        await corrupt(store, placed)
        report = await audit(redis_server[0])
        checks: dict[str, Any] = report["checks"]
        return checks

    return run_store(redis_server, body)


async def _nothing(store: Store, placed: list[dict[str, Any]]) -> None:
    return None


def test_a_clean_store_violates_nothing(redis_server: tuple[str, int]) -> None:
    checks = run_audit_after(redis_server, _nothing)
    assert {name: c["violations"] for name, c in checks.items()} == {
        "no_double_fills": 0,
        "no_duplicate_order_ids": 0,
        "balances_conserved": 0,
        "book_not_crossed": 0,
    }
    assert checks["no_double_fills"]["checked"] == 3 and checks["balances_conserved"]["checked"] == 100


async def _double_fill(store: Store, placed: list[dict[str, Any]]) -> None:
    fill = (await store.redis.lrange(FILLS_LOG_KEY, 0, -1))[0]
    await store.redis.rpush(FILLS_LOG_KEY, fill)  # the same fill written twice


async def _cash_from_nowhere(store: Store, placed: list[dict[str, Any]]) -> None:
    await store.redis.hincrby(account_key("ACC0007"), "cash", 1)


async def _crossed(store: Store, placed: list[dict[str, Any]]) -> None:
    fields: dict[Any, Any] = {"order_id": "77", "account": "ACC0009", "symbol": "600000", "side": "buy", "qty": "10"}
    fields |= {"price_cents": "1010", "filled_qty": "0", "status": "new", "client_order_id": "", "epoch": "1"}
    # A bid at 10.10 resting against the open 10.00 ask: a crossed book the matcher would never leave.
    await store.redis.hset(order_key(77), mapping=fields)
    await store.redis.zadd(open_key("600000"), {"77": 77})


async def _two_orders_one_client_id(store: Store, placed: list[dict[str, Any]]) -> None:
    first = placed[1]
    await store.redis.hset(order_key(88), mapping={"order_id": "88", "account": first["account"], "symbol": "600000"})
    await store.redis.hset(
        order_key(88),
        mapping={"side": "buy", "qty": "1", "price_cents": "1", "filled_qty": "0", "status": "new"},
    )
    await store.redis.hset(order_key(int(first["order_id"])), "client_order_id", "dup")
    await store.redis.hset(order_key(88), "client_order_id", "dup")


@pytest.mark.parametrize(
    ("corrupt", "violated", "example"),
    [
        (_double_fill, "no_double_fills", "in the fills log 2 times"),
        (_cash_from_nowhere, "balances_conserved", "cash (cents)"),
        (_crossed, "book_not_crossed", "best_ask_cents"),
        (_two_orders_one_client_id, "no_duplicate_order_ids", "dup"),
    ],
)
def test_each_seeded_violation_is_caught_by_its_check_only(
    redis_server: tuple[str, int],
    corrupt: Callable[[Store, list[dict[str, Any]]], Awaitable[None]],
    violated: str,
    example: str,
) -> None:
    checks = run_audit_after(redis_server, corrupt)
    assert checks[violated]["violations"] >= 1, checks[violated]
    assert example in json.dumps(checks[violated]["examples"])
    others = {name: c["violations"] for name, c in checks.items() if name != violated}
    assert set(others.values()) == {0}, others
