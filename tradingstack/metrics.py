"""Prometheus metrics of the gateway and the matching engines, served as `GET /metrics` (text format).

Each process builds its metrics in a private `CollectorRegistry` (nothing registers in the client's
global one), so several services, or a test, can build them in one interpreter. Counters and
histograms are updated on the request path; every gauge is read from the service's own state when
Prometheus scrapes (`set_function`), so keeping it current costs nothing between scrapes.
The names, labels and meanings are listed in docs/contracts.md §1.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

METRICS_PATH = "/metrics"
# Order latency at the gateway: a loopback order takes about a millisecond, a forward gives up after 2 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Writes (orders and cancels) per group commit; a batch holds at most MAX_BATCH (500) of them.
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)
ORDER_RESULTS = ("accepted", "rejected", "unavailable", "error")
CANCEL_RESULTS = ("cancelled", "rejected", "unavailable", "error")
ROLES = ("leader", "follower", "candidate")

Handler = Callable[[web.Request], Awaitable[web.Response]]


def result_of(status: int, success: str) -> str:
    """The `result` label of an answer: `success` (2xx), rejected (4xx), unavailable (503), error (other)."""
    if 200 <= status < 300:
        return success
    if 400 <= status < 500:
        return "rejected"
    return "unavailable" if status == 503 else "error"


class _Connected(Protocol):
    @property
    def ok(self) -> bool: ...


class _Session(Protocol):
    @property
    def connected(self) -> bool: ...


class _Service(Protocol):
    """What both services show: their Redis watch and their ZooKeeper session."""

    @property
    def redis(self) -> _Connected: ...

    @property
    def session(self) -> _Session: ...


class GatewayState(_Service, Protocol):
    @property
    def leader_reachable(self) -> bool: ...


class MatcherState(_Service, Protocol):
    @property
    def role(self) -> str: ...

    @property
    def epoch(self) -> int: ...

    @property
    def accepting(self) -> bool: ...


def _registry(service: _Service) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
    Gauge(
        "trading_redis_connected",
        "1 while this process's Redis pings are answered (every 0.5 s), else 0.",
        registry=registry,
    ).set_function(lambda: float(service.redis.ok))
    Gauge(
        "trading_zookeeper_connected",
        "1 while this process's ZooKeeper session is connected, else 0.",
        registry=registry,
    ).set_function(lambda: float(service.session.connected))
    return registry


class GatewayMetrics:
    """The gateway's orders and cancels by result, order latency, and whether it can reach a leader."""

    def __init__(self, gateway: GatewayState) -> None:
        self.registry = _registry(gateway)
        self.orders = Counter(
            "trading_orders", "Orders answered by the gateway, by result.", ["result"], registry=self.registry
        )
        self.cancels = Counter(
            "trading_cancels", "Cancels answered by the gateway, by result.", ["result"], registry=self.registry
        )
        self.order_latency = Histogram(
            "trading_order_latency_seconds",
            "Time from an order's arrival to the gateway's answer, for accepted and rejected orders.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for result in ORDER_RESULTS:  # every series exists from the start, at 0
            self.orders.labels(result=result)
        for result in CANCEL_RESULTS:
            self.cancels.labels(result=result)
        Gauge(
            "trading_gateway_leader_reachable",
            "1 while a matching-engine leader is known and the last order or cancel forwarded to it got an answer.",
            registry=self.registry,
        ).set_function(lambda: float(gateway.leader_reachable))

    def order_answered(self, status: int, seconds: float) -> None:
        result = result_of(status, "accepted")
        self.orders.labels(result=result).inc()
        if result in ("accepted", "rejected"):
            self.order_latency.observe(seconds)

    def cancel_answered(self, status: int, seconds: float) -> None:
        self.cancels.labels(result=result_of(status, "cancelled")).inc()


def _holds(engine: MatcherState, role: str) -> Callable[[], float]:
    return lambda: float(engine.role == role)


class MatcherMetrics:
    """A matching engine's role, epoch, matched and committed orders, and its group-commit batch sizes."""

    def __init__(self, engine: MatcherState) -> None:
        self.registry = _registry(engine)
        role = Gauge(
            "trading_matcher_role",
            "1 for this matcher's current election role, 0 for the others.",
            ["role"],
            registry=self.registry,
        )
        for name in ROLES:
            role.labels(role=name).set_function(_holds(engine, name))
        Gauge(
            "trading_matcher_epoch",
            "The leadership epoch this matcher last led (0: never led).",
            registry=self.registry,
        ).set_function(lambda: float(engine.epoch))
        Gauge(
            "trading_matcher_leader", "1 while this matcher leads and accepts orders, else 0.", registry=self.registry
        ).set_function(lambda: float(engine.accepting))
        self.matched = Counter(
            "trading_matcher_orders_matched",
            "Orders matched against the book and queued for Redis.",
            registry=self.registry,
        )
        self.committed = Counter(
            "trading_matcher_orders_committed",
            "Orders whose writes are in Redis (acknowledged).",
            registry=self.registry,
        )
        self.failed = Counter(
            "trading_matcher_orders_failed",
            "Matched orders whose group commit failed (not acknowledged).",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "trading_matcher_commit_batch_size",
            "Writes (orders and cancels) per group commit to Redis.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )


def add_route(app: web.Application, registry: CollectorRegistry) -> None:
    """Serve `registry` as GET /metrics on `app`."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get(METRICS_PATH, metrics)


def counted(handler: Handler, answered: Callable[[int, float], None]) -> Handler:
    """`handler`, telling `answered(status, seconds)` about every answer it gives.

    A raised HTTP error counts with its status, any other exception as the 500 aiohttp answers; a
    request whose client went away before the answer (cancelled) is not counted.
    """

    async def wrapped(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            answered(exc.status, time.perf_counter() - started)
            raise
        except Exception:
            answered(500, time.perf_counter() - started)
            raise
        answered(response.status, time.perf_counter() - started)
        return response

    return wrapped
