"""Waiting for the reference stack to come up: processes healthy, links routed, Redis settled, one leader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from clients.errors import NotSettledError
from clients.health import problem
from clients.poll import PollTimeout, poll_until
from clients.procs import is_running, role_of
from clients.redis_set import RedisSet
from clients.redis_set import address_of as redis_address_of
from clients.toxiproxy import ToxiproxyClient, ToxiproxyError
from stackspec.targets import LinkInstance, ProcessInstance, StackDescription
from tradingstack.processes import SENTINEL_MASTER
from tradingstack.state import StackStartError, log_tail, process_targets
from tradingstack.store import Store, connect

POLL_S = 0.05


def left(deadline: float) -> float:
    """Seconds until `deadline` (monotonic), never negative."""
    return max(0.0, deadline - time.monotonic())


def seed_store(redis: str) -> bool:
    """Seed the accounts and books in the Redis at `redis` (a URL); whether it seeded them now."""

    async def seed() -> bool:
        store = Store(connect(redis, timeout_s=2.0))
        try:
            return await store.seed()
        finally:
            await store.close()

    return asyncio.run(seed())


def wait_ready(
    instances: list[ProcessInstance], deadline: float, alive: Callable[[ProcessInstance], bool] = is_running
) -> None:
    """Every instance healthy before `deadline`; one that exits (`alive` says no) fails the start at once, with
    its log."""
    pending = list(instances)

    def look() -> tuple[str | None, None]:
        for instance in list(pending):
            if not alive(instance):
                raise StackStartError(instance.name, "exited during start-up", log_tail(instance.log))
            if instance.health is None or problem(instance.health) is None:
                pending.remove(instance)
        if not pending:
            return None, None
        first = pending[0]
        return (problem(first.health) if first.health else None) or "unknown", None

    try:
        poll_until(look, left(deadline), POLL_S, "ready")
    except PollTimeout as exc:
        first = pending[0]
        raise StackStartError(first.name, f"not ready in time: {exc.last}", log_tail(first.log)) from exc


def check_links(description: StackDescription, links: list[LinkInstance]) -> None:
    """Every link's proxy is up and enabled, so services never start against a missing route."""
    assert description.toxiproxy is not None
    client = ToxiproxyClient(description.toxiproxy.url, description.toxiproxy.timeout_s)
    try:
        proxies = client.proxies()
    except ToxiproxyError as exc:
        raise StackStartError("toxiproxy", str(exc)) from exc
    missing = [link.proxy for link in links if link.proxy not in proxies or not proxies[link.proxy].enabled]
    if missing:
        raise StackStartError("toxiproxy", f"proxies not up: {', '.join(missing)}")


def wait_sentinels(description: StackDescription, deadline: float) -> None:
    """One primary, the one every Sentinel names; the replica in sync; every Sentinel sees its peers."""
    targets = process_targets(description)
    redis_set = RedisSet(
        nodes={i.name: redis_address_of(i) for i in targets["redis"].instances},
        sentinels=tuple(redis_address_of(i) for i in targets["sentinel"].instances),
        master=SENTINEL_MASTER,
    )
    try:
        redis_set.wait_settled(left(deadline))
    except NotSettledError as exc:
        raise StackStartError("sentinel", f"Redis replication not settled in time: {exc}") from exc


def single_leader(roles: dict[str, str | None]) -> str | None:
    """None when exactly one is leader and every other follows (settled, as `status` wants), else the roles."""
    values = list(roles.values())
    if values.count("leader") == 1 and values.count("follower") == len(values) - 1:
        return None
    return f"roles: {roles}"


def wait_leader(matchers: list[ProcessInstance], deadline: float) -> None:
    """One leader, and every other engine queued as follower: `status` right after `up` is all healthy."""

    def look() -> tuple[str | None, None]:
        return single_leader({m.name: role_of(m) for m in matchers}), None

    try:
        poll_until(look, left(deadline), POLL_S, "one leader with the others following")
    except PollTimeout as exc:
        raise StackStartError("matcher", f"no single leader with the others following in time ({exc.last})") from exc
