"""Process plumbing shared by matcher and gateway: arguments, ZooKeeper session, Redis watch, serving."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web
from kazoo.client import KazooClient, KazooState
from kazoo.retry import KazooRetry

from tradingstack.orders import OrderRejected
from tradingstack.store import Store, StoreError

log = logging.getLogger(__name__)

StateListener = Callable[[str], None]


def parse_args(prog: str, description: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--name", required=True, help="instance name, e.g. matcher-1")
    parser.add_argument("--port", type=int, required=True, help="HTTP port on --host")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve HTTP on, and advertise (default 127.0.0.1)"
    )
    parser.add_argument("--redis", required=True, help="Redis host:port")
    parser.add_argument("--zookeeper", required=True, help="ZooKeeper host:port[,host:port...]")
    parser.add_argument("--session-timeout", type=float, default=2.0, help="ZooKeeper session timeout (s)")
    parser.add_argument(
        "--unsafe-ack",
        action="store_true",
        help="matching engine: acknowledge orders BEFORE persisting them (write-behind): loses orders on a crash",
    )
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        help="reach instance NAME at HOST:PORT instead of the URL it advertises (e.g. through a proxy)",
    )
    args = parser.parse_args(argv)
    routes = {}
    for route in args.route:
        name, sep, address = route.partition("=")
        if not sep or not name or ":" not in address:
            parser.error(f"--route wants NAME=HOST:PORT, got {route!r}")
        routes[name] = address
    args.routes = routes
    if args.session_timeout < 1.0:
        parser.error("--session-timeout must be at least 1.0 s (the server's minSessionTimeout)")
    return args


def configure_logging(name: str) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")


class ZooKeeperSession:
    """A kazoo client whose connection state the event loop can read without ever blocking on kazoo.

    Listeners run on kazoo's thread with "CONNECTED", "SUSPENDED" or "LOST"; they must not block.
    """

    def __init__(self, hosts: str, timeout_s: float) -> None:
        # Reconnect quickly and forever: kazoo's default backoff grows towards an hour.
        def retry() -> KazooRetry:
            return KazooRetry(max_tries=-1, delay=0.1, backoff=1.5, max_delay=1.0, max_jitter=0.1)

        self.client = KazooClient(hosts=hosts, timeout=timeout_s, connection_retry=retry(), command_retry=retry())
        self.timeout_s = timeout_s
        self.state = "CONNECTING"
        self._listeners: list[StateListener] = []
        self.client.add_listener(self._on_state)

    @property
    def connected(self) -> bool:
        return self.state == "CONNECTED"

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        self.client.start_async()

    def stop(self) -> None:
        """Close the session (its ephemeral nodes vanish at once). Blocking: call it from a thread."""
        try:
            self.client.stop()
            self.client.close()
        except Exception:  # a session that never connected, or one already closed
            log.exception("closing the ZooKeeper session failed")

    def _on_state(self, state: KazooState) -> bool:
        self.state = {KazooState.CONNECTED: "CONNECTED", KazooState.SUSPENDED: "SUSPENDED"}.get(state, "LOST")
        log.info("zookeeper session %s", self.state)
        for listener in self._listeners:
            try:
                listener(self.state)
            except Exception:
                log.exception("zookeeper state listener failed")
        return False


class RedisWatch:
    """Pings Redis in the background, so health answers at once even when Redis is frozen."""

    PING_TIMEOUT_S = 1.0

    def __init__(self, store: Store, interval_s: float = 0.5) -> None:
        self.store = store
        self.interval_s = interval_s
        self.ok = False
        self.reason = "not checked yet"
        self.down_since: float | None = time.monotonic()
        self.on_tick: Callable[[], None] | None = None

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.store.ping(), timeout=self.PING_TIMEOUT_S)
            except (StoreError, TimeoutError) as exc:
                reason = f"redis unreachable: {str(exc) or f'no answer within {self.PING_TIMEOUT_S} s'}"
                if self.ok:
                    log.warning(reason)
                self.ok, self.reason = False, reason
                self.down_since = self.down_since or time.monotonic()
            else:
                if not self.ok:
                    log.info("redis reachable")
                self.ok, self.reason, self.down_since = True, "", None
            if self.on_tick is not None:
                self.on_tick()
            await asyncio.sleep(self.interval_s)

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def read_json(request: web.Request) -> object:
    """The request body as JSON, decimals kept exact; raises OrderRejected (400) when it is not JSON."""
    try:
        return json.loads(await request.text(), parse_float=Decimal)
    except ValueError as exc:
        raise OrderRejected(f"body is not valid JSON: {exc}") from exc


async def serve(
    app: web.Application, port: int, on_stop: Callable[[], Awaitable[None]], host: str = "127.0.0.1"
) -> None:
    """Serve on host:port until SIGTERM/SIGINT, then run `on_stop` and close the server."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("serving on http://%s:%d", host, port)
    await stop.wait()
    log.info("shutting down")
    try:
        await asyncio.wait_for(on_stop(), timeout=5.0)
    except TimeoutError:
        log.warning("clean shutdown took longer than 5 s; exiting anyway")
    await runner.cleanup()
    log.info("stopped")


async def in_thread(func: Callable[[], Any], timeout_s: float | None) -> bool:
    """Run a blocking call (kazoo) on a daemon thread; False when it did not finish within `timeout_s`.

    Not the default executor: asyncio.run waits for its threads at exit, and a kazoo call can block
    for as long as ZooKeeper is unreachable.
    """
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def target() -> None:
        try:
            func()
        except Exception:
            log.exception("%s failed", getattr(func, "__name__", func))
        finally:
            with contextlib.suppress(RuntimeError):  # the loop may be gone by now
                loop.call_soon_threadsafe(done.set)

    threading.Thread(target=target, name=f"blocking-{getattr(func, '__name__', 'call')}", daemon=True).start()
    try:
        await asyncio.wait_for(done.wait(), timeout=timeout_s)
    except TimeoutError:
        log.warning("%s did not finish within %.1f s", getattr(func, "__name__", func), timeout_s)
        return False
    return True
