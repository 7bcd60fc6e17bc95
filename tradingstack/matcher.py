"""Matching-engine process: leader-elected through ZooKeeper, matches in memory, persists fenced to Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tradingstack.book import BookError, OrderBook
from tradingstack.election import ElectionThread, LeadershipRefused
from tradingstack.matcher_api import NotLeaderError, build_app
from tradingstack.metrics import MatcherMetrics
from tradingstack.orders import SYMBOLS, OrderRequest
from tradingstack.records import OPEN_STATUSES, Op, cancel_ops, order_ops
from tradingstack.service import RedisWatch, ZooKeeperSession, configure_logging, in_thread, parse_args, serve
from tradingstack.store import (
    FencedError,
    OrderClosedError,
    Store,
    StoreError,
    UnknownOrderError,
    connect,
)

log = logging.getLogger("tradingstack.matcher")
T = TypeVar("T")

# A leader that cannot reach Redis for this long gives way to a matcher that can.
REDIS_GRACE_S = 3.0
# Order ids are reserved from Redis this many at a time (one fenced round trip per block).
ID_BLOCK = 1000
# At most this many orders' writes go to Redis in one group commit.
MAX_BATCH = 500
# Client order ids remembered by a leader for idempotent retries (older ones are looked up in Redis).
MAX_REMEMBERED_CLIENT_IDS = 200_000
# --unsafe-ack: orders are acknowledged at once and written only once they are this old (write-behind).
# Deliberately lossy: a crash always loses what was acknowledged in the last interval, not a random part of it.
UNSAFE_WRITE_BEHIND_S = 1.5
# Leader and follower are the settled roles. A matcher is a candidate for a moment between election
# rounds or while it takes over; one that stays candidate longer than this is not in the election
# (e.g. it cannot queue in ZooKeeper) and its health says so (503), though both of its links are fine.
CANDIDATE_GRACE_S = 2.0
SETTLED_ROLES = ("leader", "follower")


@dataclass
class _Commit:
    """The writes of one accepted order (or cancel), waiting for Redis; its future resolves to the answer."""

    epoch: int
    ops: list[Op]
    answer: dict[str, Any]
    client_key: tuple[str, str] | None = None
    order: bool = True  # an order's writes (False: a cancel's)
    queued_at: float = field(default_factory=time.monotonic)
    done: asyncio.Future[dict[str, Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class MatchingEngine:
    """The books of all symbols plus this matcher's place in the election.

    Role and books belong to the event loop; the election thread reaches them only through
    `take_over` (run on the loop) and `_set_role` (scheduled on the loop).

    Group commit: an order is matched in memory under the lock, its writes are queued, and the lock
    is released at once. One committer task sends everything queued to Redis in a single fenced,
    atomic round trip, in order, while the next batch gathers. An order is acknowledged only after
    the batch holding it is in Redis; if a batch fails, it and everything queued behind it (matched
    against the same in-memory book) fail, and the book is rebuilt from Redis before the next order.
    So a slow Redis link adds its round trip to each order's latency without dividing throughput.
    """

    def __init__(self, name: str, url: str, store: Store, session: ZooKeeperSession, unsafe_ack: bool = False) -> None:
        self.name = name
        self.unsafe_ack = unsafe_ack
        self.store = store
        self.session = session
        self.redis = RedisWatch(store)
        self.role = "candidate"
        self.role_since = time.monotonic()
        self.epoch = 0
        self.stopping = False
        self._books: dict[str, OrderBook] = {}
        self._dirty = True
        self._lock = asyncio.Lock()
        self._ids: Iterator[int] = iter(())
        self._ids_epoch = 0
        self._queue: deque[_Commit] = deque()
        self._committer: asyncio.Task[None] | None = None
        self._client_ids: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        self._loop = asyncio.get_running_loop()
        self.election = ElectionThread(
            session, name, url, self._take_over_blocking, self._set_role_threadsafe, lambda: self.redis.ok
        )
        session.add_listener(self._on_session)
        self.redis.on_tick = self._check_redis
        self.metrics = MatcherMetrics(self)

    @property
    def accepting(self) -> bool:
        return self.role == "leader" and self.session.connected and not self.stopping

    # --- election side -------------------------------------------------------------------------

    def _take_over_blocking(self) -> int:
        future = asyncio.run_coroutine_threadsafe(self.take_over(), self._loop)
        try:
            return future.result(timeout=10.0)
        except TimeoutError as exc:
            future.cancel()
            raise LeadershipRefused("taking over took longer than 10 s") from exc
        except (StoreError, BookError) as exc:
            raise LeadershipRefused(f"cannot take over: {exc}") from exc

    async def take_over(self) -> int:
        """Fence off every older leader, then rebuild the books from what they persisted."""
        async with self._lock:
            await self._drained()
            epoch = await self.store.begin_epoch()
            await self._rebuild()
            self.epoch = epoch
            return epoch

    def _set_role_threadsafe(self, role: str) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._set_role, role)

    def _set_role(self, role: str) -> None:
        if role != self.role:
            log.info("role %s -> %s (epoch %d)", self.role, role, self.epoch)
            self.role, self.role_since = role, time.monotonic()

    def role_for_s(self) -> float:
        """Seconds since the role last changed."""
        return time.monotonic() - self.role_since

    def problem(self) -> str | None:
        """Why this matcher is not healthy (ZooKeeper, Redis, or not settled in the election), else None."""
        if not self.session.connected:
            return f"zookeeper {self.session.state}"
        if not self.redis.ok:
            return self.redis.reason
        if self.role not in SETTLED_ROLES and self.role_for_s() > CANDIDATE_GRACE_S:
            return f"{self.role} for {self.role_for_s():.1f} s: not in the election (neither leader nor follower)"
        return None

    def _on_session(self, state: str) -> None:
        # Runs on kazoo's thread. SUSPENDED only pauses order intake (see `accepting`); a LOST
        # session means our election node is gone and somebody else may lead already.
        if state == "LOST":
            self._set_role_threadsafe("candidate")
            self.election.step_down()

    def _check_redis(self) -> None:
        if self.role == "leader" and self.redis.down_for() > REDIS_GRACE_S:
            self.step_down(f"redis unreachable for more than {REDIS_GRACE_S:.0f} s")

    def step_down(self, reason: str) -> None:
        if self.role == "leader":
            log.warning("stepping down: %s", reason)
        self._set_role("candidate")
        self.election.step_down()

    async def leave(self, timeout_s: float) -> None:
        """Stop taking orders, let the one in flight finish, then leave the election."""
        self.stopping = True
        async with self._lock:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._drained(), timeout_s)
            self.step_down("shutting down")
        await in_thread(self.election.stop, timeout_s=timeout_s)

    # --- matching ----------------------------------------------------------------------------

    async def _rebuild(self) -> None:
        books = {symbol: OrderBook(symbol) for symbol in SYMBOLS}
        for symbol, book in books.items():
            for order in await self.store.open_orders(symbol):
                book.restore(order)
        self._books, self._dirty = books, False
        self._client_ids.clear()
        log.info("book rebuilt from redis: %d open orders", sum(len(b) for b in books.values()))

    def _leading_epoch(self) -> int:
        if not self.accepting:
            raise NotLeaderError(f"{self.name} is {self.role}")
        return self.epoch

    async def _fenced(self, write: Awaitable[T]) -> T:
        try:
            return await write
        except FencedError as exc:
            self.step_down(str(exc))
            raise NotLeaderError(f"{self.name} was fenced off: {exc}") from exc

    async def _ready(self) -> int:
        """Under the lock: the epoch we lead, with books that match Redis."""
        epoch = self._leading_epoch()
        if self._dirty:
            await self._drained()
            await self._rebuild()
        return epoch

    async def _next_order_id(self, epoch: int) -> int:
        order_id = next(self._ids, None) if self._ids_epoch == epoch else None
        if order_id is None:
            last = await self._fenced(self.store.reserve_order_ids(epoch, ID_BLOCK))
            self._ids, self._ids_epoch = iter(range(last - ID_BLOCK + 1, last + 1)), epoch
            order_id = next(self._ids)
        return order_id

    async def place(self, request: OrderRequest) -> dict[str, Any]:
        """Match one order and queue its writes; the answer is sent only once Redis holds them."""
        key = (request.account, request.client_order_id) if request.client_order_id is not None else None
        known, looked_up = None, False
        if key is not None and key not in self._client_ids:
            # A retry of an order an earlier leader took; looked up before queueing for the lock.
            known, looked_up = await self.store.find_client_order(*key), True
        async with self._lock:
            epoch = await self._ready()
            if key is not None and key not in self._client_ids and not looked_up:  # forgotten by a rebuild
                known = await self.store.find_client_order(*key)
            if key is not None and key in self._client_ids:
                earlier = self._client_ids[key]
            elif known is not None and (existing := await self.store.get_order(known)) is not None:
                return existing
            else:
                earlier = None
                order_id = await self._next_order_id(epoch)
                book = self._books[request.symbol]
                try:
                    fills = book.add(order_id, request.account, request.side, request.price_cents, request.qty)
                    ops, answer = order_ops(epoch, order_id, request, fills, time.time())
                except BaseException:
                    self._dirty = True  # the book may have moved ahead of Redis
                    raise
                commit = self._enqueue(epoch, ops, answer, key)
        if earlier is not None:  # the same client order id again: the first one's answer, fresh from Redis
            first = await asyncio.shield(earlier)
            return await self.store.get_order(int(first["order_id"])) or first
        if self.unsafe_ack:
            return commit.answer  # acknowledged before Redis holds it: lost if this process dies now
        return await asyncio.shield(commit.done)

    async def cancel(self, order_id: int) -> dict[str, Any]:
        async with self._lock:
            epoch = await self._ready()
            book = next((b for b in self._books.values() if order_id in b), None)
            if book is not None:
                book.cancel(order_id)
                commit: _Commit | None = self._enqueue(epoch, cancel_ops(order_id, book.symbol), {}, order=False)
            else:
                commit = None
                barrier = self._queue[-1].done if self._queue else None
        if commit is not None:
            await asyncio.shield(commit.done)
            order = await self.store.get_order(order_id)
            if order is None or order["status"] != "cancelled":
                raise StoreError(f"order {order_id} cancelled but reads back as {order and order['status']}")
            return order
        # Not resting in the book: unknown, or already filled or cancelled, once pending writes are in.
        if barrier is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(barrier)
        order = await self.store.get_order(order_id)
        if order is None:
            raise UnknownOrderError(f"order {order_id} does not exist")
        if order["status"] in OPEN_STATUSES:
            raise StoreError(f"order {order_id} is open in Redis but not in the book; retry")
        raise OrderClosedError(f"order {order_id} is already {order['status']}")

    # --- group commit ------------------------------------------------------------------------

    def _enqueue(
        self,
        epoch: int,
        ops: list[Op],
        answer: dict[str, Any],
        client_key: tuple[str, str] | None = None,
        order: bool = True,
    ) -> _Commit:
        commit = _Commit(epoch, ops, answer, client_key, order)
        if order:
            self.metrics.matched.inc()
        if client_key is not None:
            self._remember(client_key, commit.done)
        # Every future is awaited by its request, unless the client went away: never log it as lost.
        commit.done.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        self._queue.append(commit)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_loop())
        return commit

    def _remember(self, key: tuple[str, str], done: asyncio.Future[dict[str, Any]]) -> None:
        self._client_ids[key] = done
        if len(self._client_ids) > MAX_REMEMBERED_CLIENT_IDS:
            for old in list(self._client_ids)[: MAX_REMEMBERED_CLIENT_IDS // 10]:
                if self._client_ids[old].done():
                    del self._client_ids[old]

    def _forget(self, commit: _Commit) -> None:
        # A failed order was never acknowledged: its client order id may be placed again.
        key = commit.client_key
        if key is not None and self._client_ids.get(key) is commit.done:
            del self._client_ids[key]

    async def _due(self) -> int:
        """How many queued commits to write now: all (up to a batch), or with --unsafe-ack those old enough."""
        if not self.unsafe_ack:
            return min(MAX_BATCH, len(self._queue))
        await asyncio.sleep(max(0.0, self._queue[0].queued_at + UNSAFE_WRITE_BEHIND_S - time.monotonic()))
        due = time.monotonic() - UNSAFE_WRITE_BEHIND_S
        count = 0
        while count < min(MAX_BATCH, len(self._queue)) and self._queue[count].queued_at <= due:
            count += 1
        return max(count, 1)

    async def _commit_loop(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(await self._due())]
            self.metrics.batch_size.observe(len(batch))
            try:
                await self._fenced(self.store.apply(batch[0].epoch, [op for c in batch for op in c.ops]))
            except BaseException as exc:
                # Everything queued was matched against a book that assumed this batch: fail it all.
                failed, self._queue = batch + list(self._queue), deque()
                self._dirty = True
                self.metrics.failed.inc(sum(c.order for c in failed))
                for commit in failed:
                    self._forget(commit)
                    if not commit.done.done():
                        commit.done.set_exception(exc if isinstance(exc, Exception) else StoreError("shutting down"))
                if not isinstance(exc, Exception):
                    raise
                continue
            self.metrics.committed.inc(sum(c.order for c in batch))
            for commit in batch:
                if not commit.done.done():
                    commit.done.set_result(commit.answer)

    async def _drained(self) -> None:
        """Wait until every queued write has been applied or failed."""
        while self._committer is not None and not self._committer.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._committer)


async def run(argv: list[str] | None = None) -> None:
    args = parse_args("tradingstack.matcher", "Matching engine of the reference trading stack.", argv)
    configure_logging(args.name)
    store = Store(connect(args.redis))
    session = ZooKeeperSession(args.zookeeper, args.session_timeout)
    engine = MatchingEngine(args.name, f"http://{args.host}:{args.port}", store, session, unsafe_ack=args.unsafe_ack)
    if args.unsafe_ack:
        log.warning("--unsafe-ack: orders are acknowledged before they are persisted; a crash loses them")
    watch = asyncio.create_task(engine.redis.run())
    session.start()
    engine.election.start()

    async def shutdown() -> None:
        await engine.leave(timeout_s=args.session_timeout + 1.5)
        await in_thread(session.stop, timeout_s=2.0)
        watch.cancel()
        await store.close()

    await serve(build_app(engine), args.port, shutdown, args.host)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(argv))


if __name__ == "__main__":
    main()
