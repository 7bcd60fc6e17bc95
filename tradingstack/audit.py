"""The reference stack's own invariants, checked on its Redis state: `python -m tradingstack audit --dir DIR`.

Every order, fill, account and open book is read and checked; the answer is one JSON object with,
per invariant, how many items were checked, how many violate it and the first few violations.
The chaos engine calls this after a run (the stack's data layout stays the stack's business).

- `no_double_fills`: every fill id is unique in the fills log; each order's fills add up to its
  filled quantity, which never exceeds its quantity; each fill is on both its buy and sell order.
- `no_duplicate_order_ids`: each (account, client order id) names one order, and that order
  carries the same client order id.
- `balances_conserved`: total cash and total shares of every symbol over all accounts equal the
  seeded totals (fills move value between accounts, never create or destroy it).
- `book_not_crossed`: in each symbol's open book the best bid is below the best ask, and every
  order in the open set is open.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from typing import Any

from tradingstack.orders import ACCOUNTS, SEED_CASH_CENTS, SEED_SHARES, SYMBOLS
from tradingstack.records import (
    FILLS_LOG_KEY,
    OPEN_STATUSES,
    account_key,
    client_order_key,
    open_key,
    order_fills_key,
    order_key,
)
from tradingstack.store import Store, connect

MAX_EXAMPLES = 20
_SCAN_BATCH = 1000


def _result(checked: int, violations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"checked": checked, "violations": len(violations), "examples": violations[:MAX_EXAMPLES]}


async def _orders(store: Store) -> dict[int, dict[str, str]]:
    client: Any = store.redis
    ids = [
        int(key.split(":")[2])
        async for key in client.scan_iter(match="ts:order:*", count=_SCAN_BATCH)
        if key.count(":") == 2
    ]
    orders: dict[int, dict[str, str]] = {}
    for start in range(0, len(ids), _SCAN_BATCH):
        chunk = ids[start : start + _SCAN_BATCH]
        async with client.pipeline(transaction=False) as pipe:
            for order_id in chunk:
                pipe.hgetall(order_key(order_id))
            rows = await pipe.execute()
        orders |= {order_id: row for order_id, row in zip(chunk, rows, strict=True) if row}
    return orders


async def _order_fills(store: Store, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    client: Any = store.redis
    fills: dict[int, list[dict[str, Any]]] = {}
    for start in range(0, len(ids), _SCAN_BATCH):
        chunk = ids[start : start + _SCAN_BATCH]
        async with client.pipeline(transaction=False) as pipe:
            for order_id in chunk:
                pipe.lrange(order_fills_key(order_id), 0, -1)
            rows = await pipe.execute()
        fills |= {order_id: [json.loads(r) for r in row] for order_id, row in zip(chunk, rows, strict=True)}
    return fills


def no_double_fills(
    orders: dict[int, dict[str, str]], fills_log: list[dict[str, Any]], per_order: dict[int, list[dict[str, Any]]]
) -> dict[str, Any]:
    bad: list[dict[str, Any]] = []
    for fill_id, count in Counter(f["fill_id"] for f in fills_log).items():
        if count > 1:
            bad.append({"fill_id": fill_id, "problem": f"in the fills log {count} times"})
    for order_id, fields in orders.items():
        fills = per_order.get(order_id, [])
        filled, qty = int(fields.get("filled_qty", 0)), int(fields.get("qty", 0))
        total = sum(int(f["qty"]) for f in fills)
        if total != filled or filled > qty or len({f["fill_id"] for f in fills}) != len(fills):
            bad.append({"order_id": str(order_id), "qty": qty, "filled_qty": filled, "sum_of_fills": total})
        for fill in fills:
            other = int(fill["sell_order_id"] if int(fill["buy_order_id"]) == order_id else fill["buy_order_id"])
            if fill["fill_id"] not in {f["fill_id"] for f in per_order.get(other, [])}:
                bad.append({"fill_id": fill["fill_id"], "problem": f"on order {order_id} but not on order {other}"})
    return _result(len(orders), bad)


async def no_duplicate_order_ids(store: Store, orders: dict[int, dict[str, str]]) -> dict[str, Any]:
    client: Any = store.redis
    bad: list[dict[str, Any]] = []
    by_client: dict[tuple[str, str], list[int]] = defaultdict(list)
    for order_id, fields in orders.items():
        if fields.get("client_order_id"):
            by_client[(fields["account"], fields["client_order_id"])].append(order_id)
    keys = list(by_client)
    async with client.pipeline(transaction=False) as pipe:
        for account, client_id in keys:
            pipe.get(client_order_key(account, client_id))
        mapped = await pipe.execute() if keys else []
    for (account, client_id), recorded in zip(keys, mapped, strict=True):
        ids = by_client[(account, client_id)]
        if len(ids) > 1 or recorded is None or int(recorded) != ids[0]:
            bad.append({"account": account, "client_order_id": client_id, "orders": ids, "index_says": recorded})
    return _result(len(orders), bad)


async def balances_conserved(store: Store) -> dict[str, Any]:
    client: Any = store.redis
    async with client.pipeline(transaction=False) as pipe:
        for account in ACCOUNTS:
            pipe.hgetall(account_key(account))
        rows: list[dict[str, str]] = await pipe.execute()
    bad: list[dict[str, Any]] = []
    cash = sum(int(r.get("cash", 0)) for r in rows)
    if cash != SEED_CASH_CENTS * len(ACCOUNTS):
        bad.append({"asset": "cash (cents)", "expected": SEED_CASH_CENTS * len(ACCOUNTS), "found": cash})
    for symbol in SYMBOLS:
        shares = sum(int(r.get(symbol, 0)) for r in rows)
        if shares != SEED_SHARES * len(ACCOUNTS):
            bad.append({"asset": symbol, "expected": SEED_SHARES * len(ACCOUNTS), "found": shares})
    return _result(len(ACCOUNTS), bad)


async def book_not_crossed(store: Store, orders: dict[int, dict[str, str]]) -> dict[str, Any]:
    client: Any = store.redis
    bad: list[dict[str, Any]] = []
    for symbol in SYMBOLS:
        ids = [int(i) for i in await client.zrange(open_key(symbol), 0, -1)]
        resting = [orders.get(i) for i in ids]
        for order_id, fields in zip(ids, resting, strict=True):
            if fields is None or fields.get("status") not in OPEN_STATUSES:
                status = fields.get("status") if fields else "missing"
                bad.append({"symbol": symbol, "order_id": str(order_id), "problem": f"in the open book but {status}"})
        bids = [int(f["price_cents"]) for f in resting if f and f.get("side") == "buy"]
        asks = [int(f["price_cents"]) for f in resting if f and f.get("side") == "sell"]
        if bids and asks and max(bids) >= min(asks):
            bad.append({"symbol": symbol, "best_bid_cents": max(bids), "best_ask_cents": min(asks)})
    return _result(len(SYMBOLS), bad)


async def audit(redis: str) -> dict[str, Any]:
    """Every invariant of the module docstring over the stack's Redis state."""
    store = Store(connect(redis, timeout_s=5.0))
    try:
        orders = await _orders(store)
        client: Any = store.redis
        fills_log = [json.loads(raw) for raw in await client.lrange(FILLS_LOG_KEY, 0, -1)]
        per_order = await _order_fills(store, list(orders))
        return {
            "orders": len(orders),
            "fills": len(fills_log),
            "checks": {
                "no_double_fills": no_double_fills(orders, fills_log, per_order),
                "no_duplicate_order_ids": await no_duplicate_order_ids(store, orders),
                "balances_conserved": await balances_conserved(store),
                "book_not_crossed": await book_not_crossed(store, orders),
            },
        }
    finally:
        await store.close()


def run_audit(redis: str) -> dict[str, Any]:
    return asyncio.run(audit(redis))
