"""Order gateway process: the public HTTP API; forwards orders to the matching leader, reads from Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from aiohttp import web
from kazoo.exceptions import NoNodeError
from kazoo.recipe.watchers import DataWatch

from tradingstack.election import LEADER_PATH, parse_leader
from tradingstack.metrics import GatewayMetrics, add_route, counted
from tradingstack.orders import ACCOUNTS, OrderRejected, parse_order_id, parse_public
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
from tradingstack.store import Store, StoreError, connect

log = logging.getLogger("tradingstack.gateway")

FORWARD_TIMEOUT_S = 2.0


class Gateway:
    """Follows the leader znode and forwards order entry there; everything else comes from Redis."""

    def __init__(
        self, name: str, store: Store, session: ZooKeeperSession, routes: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.routes = routes or {}
        self.store = store
        self.session = session
        self.redis = RedisWatch(store)
        self.leader: dict[str, Any] | None = None
        self._answered = True  # the last request forwarded to the leader was answered by it (below 500)
        self.metrics = GatewayMetrics(self)
        self._loop = asyncio.get_running_loop()
        self._refreshing = False
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=256),
        )

    async def close(self) -> None:
        await self._http.close()

    def watch_leader(self) -> None:
        """Install the DataWatch; blocking until ZooKeeper answers, so run it on a thread."""
        DataWatch(self.session.client, LEADER_PATH, self._on_leader_data)

    def _on_leader_data(self, data: bytes | None, stat: Any) -> None:
        self._set_leader_threadsafe(parse_leader(data))

    def _set_leader_threadsafe(self, leader: dict[str, Any] | None) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._set_leader, leader)

    def _set_leader(self, leader: dict[str, Any] | None) -> None:
        if leader != self.leader:
            log.info("leader is now %s", leader or "unknown")
            self._answered = True  # a new leader is not tried yet
        self.leader = leader

    @property
    def leader_reachable(self) -> bool:
        """A leader is known, and the last request forwarded to it was answered (not a failure, timeout or 5xx)."""
        return self.leader is not None and self._answered

    def refresh_leader(self) -> None:
        """Re-read the leader znode without waiting for it (one read in flight at a time)."""
        if self._refreshing or not self.session.connected:
            return
        self._refreshing = True

        def done(result: Any) -> None:
            self._refreshing = False
            try:
                data, _ = result.get_nowait()
                self._set_leader_threadsafe(parse_leader(data))
            except NoNodeError:
                self._set_leader_threadsafe(None)
            except Exception as exc:
                log.info("re-reading the leader failed: %s", exc)

        self.session.client.get_async(LEADER_PATH).rawlink(done)

    async def forward(self, method: str, path: str, body: dict[str, Any] | None = None) -> web.Response:
        leader = self.leader
        if leader is None:
            self.refresh_leader()
            return error(503, "no matching-engine leader")
        route = self.routes.get(leader["name"])
        base = f"http://{route}" if route else leader["url"]
        try:
            async with self._http.request(method, f"{base}{path}", json=body) as resp:
                payload = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._answered = False
            self.refresh_leader()
            reason = str(exc) or type(exc).__name__
            return error(503, f"matching engine {leader['name']} unreachable: {reason}")
        self._answered = status < 500
        if status >= 500:
            self.refresh_leader()
            detail = payload.get("detail") or payload.get("error") if isinstance(payload, dict) else payload
            return error(503, f"matching engine {leader['name']} answered {status}: {detail}")
        return web.json_response(payload, status=status)

    def problem(self) -> str | None:
        if not self.session.connected:
            return f"zookeeper {self.session.state}"
        if self.leader is None:
            return "no matching-engine leader"
        if not self.redis.ok:
            return self.redis.reason
        return None


def build_app(gateway: Gateway) -> web.Application:
    async def place(request: web.Request) -> web.Response:
        try:
            order = parse_public(await read_json(request))
        except OrderRejected as exc:
            return error(exc.status, str(exc))
        return await gateway.forward("POST", "/internal/orders", order.to_internal())

    async def cancel(request: web.Request) -> web.Response:
        order_id = parse_order_id(request.match_info["order_id"])
        if order_id is None:
            return error(404, f"unknown order {request.match_info['order_id']!r}")
        return await gateway.forward("DELETE", f"/internal/orders/{order_id}")

    async def get_order(request: web.Request) -> web.Response:
        order_id = parse_order_id(request.match_info["order_id"])
        try:
            order = await gateway.store.get_order(order_id) if order_id is not None else None
        except StoreError as exc:
            return error(503, str(exc))
        if order is None:
            return error(404, f"unknown order {request.match_info['order_id']!r}")
        return web.json_response(order)

    async def get_account(request: web.Request) -> web.Response:
        name = request.match_info["account"]
        try:
            account = await gateway.store.get_account(name) if name in ACCOUNTS else None
        except StoreError as exc:
            return error(503, str(exc))
        if account is None:
            return error(404, f"unknown account {name!r} (ACC0001 to ACC0100)")
        return web.json_response(account)

    async def health(request: web.Request) -> web.Response:
        reason = gateway.problem()
        if reason is not None:
            return web.json_response({"status": "degraded", "reason": reason}, status=503)
        assert gateway.leader is not None
        return web.json_response({"status": "ok", "leader": gateway.leader["name"]})

    app = web.Application()
    app.router.add_post("/orders", counted(place, gateway.metrics.order_answered))
    app.router.add_delete("/orders/{order_id}", counted(cancel, gateway.metrics.cancel_answered))
    app.router.add_get("/orders/{order_id}", get_order)
    app.router.add_get("/accounts/{account}", get_account)
    app.router.add_get("/health", health)
    add_route(app, gateway.metrics.registry)
    return app


async def run(argv: list[str] | None = None) -> None:
    args = parse_args("tradingstack.gateway", "Order gateway of the reference trading stack.", argv)
    configure_logging(args.name)
    store = Store(connect(args.redis))
    session = ZooKeeperSession(args.zookeeper, args.session_timeout)
    gateway = Gateway(args.name, store, session, args.routes)
    watch = asyncio.create_task(gateway.redis.run())
    session.start()
    installing = asyncio.create_task(in_thread(gateway.watch_leader, timeout_s=None))

    async def shutdown() -> None:
        await in_thread(session.stop, timeout_s=2.0)
        installing.cancel()
        watch.cancel()
        await gateway.close()
        await store.close()

    await serve(build_app(gateway), args.port, shutdown, args.host)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(argv))


if __name__ == "__main__":
    main()
