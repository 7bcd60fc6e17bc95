"""Matching-engine process: leader-elected through ZooKeeper, matches in memory, persists fenced to Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web

from tradingstack.book import BookError, OrderBook
from tradingstack.election import ElectionThread, LeadershipRefused
from tradingstack.orders import SYMBOLS, OrderRejected, OrderRequest, parse_internal, parse_order_id
from tradingstack.service import (
    RedisWatch,
    ZooKeeperSession,
    configure_logging,
    error,
    in_thread,
    parse_args,
    read_json,
    serve,
)
from tradingstack.store import (
    FencedError,
    OrderClosedError,
    Store,
    StoreError,
    StoreUnavailableError,
    UnknownOrderError,
    connect,
)

log = logging.getLogger("tradingstack.matcher")
T = TypeVar("T")

# A leader that cannot reach Redis for this long gives way to a matcher that can.
REDIS_GRACE_S = 3.0


class NotLeaderError(Exception):
    """This matcher does not (or no longer) lead; the gateway should ask the leader."""


class MatchingEngine:
    """The books of all symbols plus this matcher's place in the election.

    Role and books belong to the event loop; the election thread reaches them only through
    `take_over` (run on the loop) and `_set_role` (scheduled on the loop).
    """

    def __init__(self, name: str, url: str, store: Store, session: ZooKeeperSession) -> None:
        self.name = name
        self.store = store
        self.session = session
        self.redis = RedisWatch(store)
        self.role = "candidate"
        self.epoch = 0
        self.stopping = False
        self._books: dict[str, OrderBook] = {}
        self._dirty = True
        self._lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self.election = ElectionThread(
            session, name, url, self._take_over_blocking, self._set_role_threadsafe, lambda: self.redis.ok
        )
        session.add_listener(self._on_session)
        self.redis.on_tick = self._check_redis

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
        self.role = role

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
            self.step_down("shutting down")
        await in_thread(self.election.stop, timeout_s=timeout_s)

    # --- matching ----------------------------------------------------------------------------

    async def _rebuild(self) -> None:
        books = {symbol: OrderBook(symbol) for symbol in SYMBOLS}
        for symbol, book in books.items():
            for order in await self.store.open_orders(symbol):
                book.restore(order)
        self._books, self._dirty = books, False
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

    async def place(self, request: OrderRequest) -> dict[str, Any]:
        """Match and persist one order; the answer is sent only once Redis holds it."""
        async with self._lock:
            epoch = self._leading_epoch()
            if self._dirty:
                await self._rebuild()
            if request.client_order_id is not None:
                known = await self.store.find_client_order(request.account, request.client_order_id)
                existing = await self.store.get_order(known) if known is not None else None
                if existing is not None:
                    return existing
            order_id = await self._fenced(self.store.next_order_id(epoch))
            book = self._books[request.symbol]
            try:
                fills = book.add(order_id, request.account, request.side, request.price_cents, request.qty)
                commit = self.store.commit_order(epoch, order_id, request, fills, time.time())
                return await self._fenced(commit)
            except BaseException:
                # The book moved ahead of Redis (or may have): rebuild before the next order.
                self._dirty = True
                raise

    async def cancel(self, order_id: int) -> dict[str, Any]:
        async with self._lock:
            epoch = self._leading_epoch()
            if self._dirty:
                await self._rebuild()
            order = await self._fenced(self.store.cancel_order(epoch, order_id))
            self._books[order["symbol"]].cancel(order_id)
            return order


def _store_failure(exc: Exception) -> web.Response:
    if isinstance(exc, NotLeaderError):
        return error(503, "not leader", detail=str(exc))
    if isinstance(exc, StoreUnavailableError | BookError):
        return error(503, f"order not acknowledged: {exc}")
    return error(500, f"order not acknowledged: {exc}")


def build_app(engine: MatchingEngine) -> web.Application:
    async def place(request: web.Request) -> web.Response:
        try:
            order_request = parse_internal(await read_json(request))
            return web.json_response(await engine.place(order_request), status=201)
        except OrderRejected as exc:
            return error(exc.status, str(exc))
        except (NotLeaderError, StoreError, BookError) as exc:
            return _store_failure(exc)

    async def cancel(request: web.Request) -> web.Response:
        order_id = parse_order_id(request.match_info["order_id"])
        if order_id is None:
            return error(404, f"unknown order {request.match_info['order_id']!r}")
        try:
            return web.json_response(await engine.cancel(order_id))
        except UnknownOrderError as exc:
            return error(404, str(exc))
        except OrderClosedError as exc:
            return error(409, str(exc))
        except (NotLeaderError, StoreError, BookError) as exc:
            return _store_failure(exc)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(
            {"name": engine.name, "role": engine.role, "epoch": engine.epoch, "accepting": engine.accepting}
        )

    async def health(request: web.Request) -> web.Response:
        reason = None if engine.session.connected else f"zookeeper {engine.session.state}"
        reason = reason or (None if engine.redis.ok else engine.redis.reason)
        if reason is not None:
            return web.json_response({"status": "degraded", "reason": reason}, status=503)
        return web.json_response({"status": "ok", "role": engine.role})

    app = web.Application()
    app.router.add_post("/internal/orders", place)
    app.router.add_delete("/internal/orders/{order_id}", cancel)
    app.router.add_get("/status", status)
    app.router.add_get("/health", health)
    return app


async def run(argv: list[str] | None = None) -> None:
    args = parse_args("tradingstack.matcher", "Matching engine of the reference trading stack.", argv)
    configure_logging(args.name)
    store = Store(connect(args.redis))
    session = ZooKeeperSession(args.zookeeper, args.session_timeout)
    engine = MatchingEngine(args.name, f"http://127.0.0.1:{args.port}", store, session)
    watch = asyncio.create_task(engine.redis.run())
    session.start()
    engine.election.start()

    async def shutdown() -> None:
        await engine.leave(timeout_s=args.session_timeout + 1.5)
        await in_thread(session.stop, timeout_s=2.0)
        watch.cancel()
        await store.close()

    await serve(build_app(engine), args.port, shutdown)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(argv))


if __name__ == "__main__":
    main()
