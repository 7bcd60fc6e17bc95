"""Redis persistence of orders, fills and accounts; every write of the matching leader is fenced by epoch.

What is written (keys, the writes of an order or a cancel, the public JSON) is `tradingstack.records`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError, WatchError

from tradingstack.book import Fill, RestingOrder
from tradingstack.orders import ACCOUNTS, SEED_CASH_CENTS, SEED_SHARES, SYMBOLS, OrderRequest, cents_to_price
from tradingstack.records import (
    EPOCH_KEY,
    OPEN_STATUSES,
    ORDER_SEQ_KEY,
    SEEDED_KEY,
    Op,
    account_key,
    client_order_key,
    open_key,
    order_fills_key,
    order_key,
    order_ops,
    render_order,
)

log = logging.getLogger("tradingstack.store")
SENTINEL_SCHEME = "sentinel://"
# How long an acknowledgement waits for a replica to confirm a batch (ha profile).
REPLICA_WAIT_MS = 50


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUnavailableError(StoreError):
    """Redis did not answer (refused, timed out, or failed mid-command)."""


class FencedError(StoreError):
    """The epoch moved on: a newer leader exists and this writer must step down."""


class UnknownOrderError(StoreError):
    """No order has this id."""


class OrderClosedError(StoreError):
    """The order is already filled or cancelled."""


# Allocating ids is a write too, so it is fenced like every other leader write. Returns the last id reserved.
_RESERVE_IDS_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED epoch is ' .. tostring(redis.call('GET', KEYS[1])) .. ', not ' .. ARGV[1])
end
return redis.call('INCRBY', KEYS[2], ARGV[2])
"""

# A batch of leader writes (group commit): applied in order, in one round trip, only while the writer's epoch
# is current. Scripts run atomically, so no other client sees half a batch and no newer leader interleaves.
_APPLY_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED epoch is ' .. tostring(redis.call('GET', KEYS[1])) .. ', not ' .. ARGV[1])
end
local ops = cjson.decode(ARGV[2])
for _, op in ipairs(ops) do redis.call(unpack(op)) end
return #ops
"""


# SETNX-guarded so that seeding happens once, atomically, however often it is asked for.
_SEED_LUA = """
if redis.call('SETNX', KEYS[1], ARGV[1]) == 0 then return 0 end
local cash, shares, nsym = ARGV[2], ARGV[3], tonumber(ARGV[4])
for i = 5 + nsym, #ARGV do
  local key = 'ts:account:' .. ARGV[i]
  redis.call('HSET', key, 'cash', cash)
  for s = 5, 4 + nsym do redis.call('HSET', key, ARGV[s], shares) end
end
return 1
"""


def connect(address: str, timeout_s: float = 1.0) -> aioredis.Redis:
    """A client that surfaces faults at once: explicit timeouts and no hidden retries.

    `address` is `host:port`, or `sentinel://host:port,host:port,.../MASTER` to follow the primary
    that the Sentinels name: after a failover the next connection goes to the new primary.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_error": [],
        "health_check_interval": 0,
    }
    if address.startswith(SENTINEL_SCHEME):
        hosts, _, master = address.removeprefix(SENTINEL_SCHEME).partition("/")
        sentinels = [(host, int(port)) for host, _, port in (h.rpartition(":") for h in hosts.split(","))]
        timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
        client: aioredis.Redis = sentinel.master_for(master, **options)
        return client
    host, _, port = address.rpartition(":")
    return aioredis.Redis(host=host, port=int(port), **options)


def sentinel_address(sentinels: list[str], master: str) -> str:
    return f"{SENTINEL_SCHEME}{','.join(sentinels)}/{master}"


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except WatchError as exc:
        raise FencedError("epoch changed during the write; a newer leader exists") from exc
    except ResponseError as exc:
        if str(exc).startswith("FENCED"):
            raise FencedError(str(exc)) from exc
        raise StoreError(f"redis refused a command: {exc}") from exc
    except (RedisError, OSError) as exc:
        raise StoreUnavailableError(f"redis unavailable: {type(exc).__name__}: {exc}") from exc


class Store:
    """Orders, fills and accounts in Redis. Writers pass the epoch they lead under."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._r: Any = client  # redis-py's command return types are unions of bytes and str
        # A Sentinel-managed primary replicates asynchronously; waiting for one replica before an
        # acknowledgement means a failover cannot lose what was acknowledged (semi-synchronous).
        self.wait_replicas = 1 if isinstance(client.connection_pool, SentinelConnectionPool) else 0
        self._reserve_ids = client.register_script(_RESERVE_IDS_LUA)
        self._apply = client.register_script(_APPLY_LUA)
        self._seed = client.register_script(_SEED_LUA)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> None:
        with _translated():
            await self.redis.ping()

    async def seed(self) -> bool:
        """Create the accounts with their cash and shares once; True if this call did it."""
        marker = json.dumps({"accounts": len(ACCOUNTS), "cash_cents": SEED_CASH_CENTS, "shares": SEED_SHARES})
        args: list[str | int] = [marker, SEED_CASH_CENTS, SEED_SHARES, len(SYMBOLS), *SYMBOLS, *ACCOUNTS]
        with _translated():
            return bool(await self._seed(keys=[SEEDED_KEY], args=args))

    async def begin_epoch(self) -> int:
        """Start a new leadership epoch; every write under an older epoch fails from now on."""
        with _translated():
            return int(await self.redis.incr(EPOCH_KEY))

    async def current_epoch(self) -> int:
        with _translated():
            return int(await self.redis.get(EPOCH_KEY) or 0)

    async def next_order_id(self, epoch: int) -> int:
        return await self.reserve_order_ids(epoch, 1)

    async def reserve_order_ids(self, epoch: int, count: int) -> int:
        """Reserve `count` consecutive order ids for this epoch's leader; returns the last of them."""
        with _translated():
            return int(await self._reserve_ids(keys=[EPOCH_KEY, ORDER_SEQ_KEY], args=[epoch, count]))

    async def apply(self, epoch: int, ops: list[Op]) -> None:
        """Apply a batch of writes in order, atomically, fenced by epoch, in one round trip."""
        if not ops:
            return
        with _translated():
            if not self.wait_replicas:
                await self._apply(keys=[EPOCH_KEY], args=[epoch, json.dumps(ops)])
                return
            # WAIT covers the writes of its own connection: send both on one (a pipeline).
            async with self._r.pipeline(transaction=False) as pipe:
                await self._apply(keys=[EPOCH_KEY], args=[epoch, json.dumps(ops)], client=pipe)  # queued
                pipe.execute_command("WAIT", self.wait_replicas, REPLICA_WAIT_MS)
                _, replicated = await pipe.execute()
            if int(replicated) < self.wait_replicas:
                # No replica in sync (e.g. the old primary has not rejoined after a failover): the write
                # is on the primary only. Acknowledge it — refusing would stop all trading — and say so.
                log.warning("batch acknowledged without a replica: durability degraded until one rejoins")

    async def find_client_order(self, account: str, client_order_id: str) -> int | None:
        with _translated():
            found = await self.redis.get(client_order_key(account, client_order_id))
        return int(found) if found else None

    async def commit_order(
        self, epoch: int, order_id: int, request: OrderRequest, fills: list[Fill], ack_at: float
    ) -> dict[str, Any]:
        """Persist a new order, its fills, the makers' new state and the cash/share moves, atomically."""
        ops, answer = order_ops(epoch, order_id, request, fills, ack_at)
        await self.apply(epoch, ops)
        return answer

    async def cancel_order(self, epoch: int, order_id: int) -> dict[str, Any]:
        """Mark an open order cancelled and take it off its symbol's open set."""
        with _translated():
            async with self._pipeline() as pipe:
                await self._fence(pipe, epoch)
                fields: dict[str, str] = await pipe.hgetall(order_key(order_id))
                if not fields:
                    raise UnknownOrderError(f"order {order_id} does not exist")
                if fields["status"] not in OPEN_STATUSES:
                    raise OrderClosedError(f"order {order_id} is already {fields['status']}")
                fills: list[str] = await pipe.lrange(order_fills_key(order_id), 0, -1)
                pipe.multi()
                pipe.hset(order_key(order_id), "status", "cancelled")
                pipe.zrem(open_key(fields["symbol"]), order_id)
                await pipe.execute()
        return render_order({**fields, "status": "cancelled"}, fills)

    async def get_order(self, order_id: int) -> dict[str, Any] | None:
        with _translated():
            async with self._pipeline() as pipe:
                pipe.hgetall(order_key(order_id))
                pipe.lrange(order_fills_key(order_id), 0, -1)
                fields, fills = await pipe.execute()
        return render_order(fields, fills) if fields else None

    async def get_account(self, account: str) -> dict[str, Any] | None:
        with _translated():
            fields: dict[str, str] = await self._r.hgetall(account_key(account))
        if not fields:
            return None
        positions = {s: int(fields.get(s, 0)) for s in SYMBOLS}
        return {"account": account, "cash": cents_to_price(int(fields["cash"])), "positions": positions}

    async def open_orders(self, symbol: str) -> list[RestingOrder]:
        """The open orders of a symbol, oldest first, as the book held them."""
        with _translated():
            ids: list[str] = await self._r.zrange(open_key(symbol), 0, -1)
            async with self._pipeline() as pipe:
                for order_id in ids:
                    pipe.hgetall(order_key(int(order_id)))
                rows: list[dict[str, str]] = await pipe.execute() if ids else []
        orders = []
        for row in rows:
            if row and row["status"] in OPEN_STATUSES:
                qty = int(row["qty"])
                orders.append(
                    RestingOrder(
                        order_id=int(row["order_id"]),
                        account=row["account"],
                        side="buy" if row["side"] == "buy" else "sell",
                        price_cents=int(row["price_cents"]),
                        qty=qty,
                        remaining=qty - int(row["filled_qty"]),
                    )
                )
        return orders

    async def totals(self) -> tuple[int, dict[str, int]]:
        """Total cash (cents) and shares per symbol over all accounts; fills must conserve both."""
        with _translated():
            async with self._pipeline() as pipe:
                for account in ACCOUNTS:
                    pipe.hgetall(account_key(account))
                rows: list[dict[str, str]] = await pipe.execute()
        cash = sum(int(r.get("cash", 0)) for r in rows)
        return cash, {s: sum(int(r.get(s, 0)) for r in rows) for s in SYMBOLS}

    def _pipeline(self) -> Any:
        return self.redis.pipeline(transaction=True)

    async def _fence(self, pipe: Any, epoch: int) -> None:
        # WATCH before reading: if a new leader INCRs the epoch between here and EXEC, EXEC aborts.
        await pipe.watch(EPOCH_KEY)
        current = int(await pipe.get(EPOCH_KEY) or 0)
        if current != epoch:
            raise FencedError(f"epoch is {current}, this writer leads epoch {epoch}; stepping down")
