"""`python -m tradingstack status`: running, healthy and role of every instance, container and link of a stack."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from redis.exceptions import RedisError

from clients import http
from clients.health import UNSETTLED_ROLES, problem, role_problem
from clients.procs import is_running, role_of
from clients.redis_set import address_of as redis_address_of
from clients.redis_set import redis_call
from clients.toxiproxy import ToxiproxyClient, ToxiproxyError
from clients.zk import address_of as zookeeper_address_of
from clients.zk import srvr_mode
from stackspec.targets import LinkTarget, ProcessInstance, StackDescription
from tradingstack import containers
from tradingstack.state import STATE_FILE, LaunchError, process_targets, read_state


@dataclass(frozen=True)
class InstanceStatus:
    """One row of `status`."""

    target: str
    instance: str
    pid: int | None
    running: bool
    healthy: bool
    role: str | None
    problem: str | None


def stack_status(directory: Path) -> list[InstanceStatus]:
    """Running, healthy and role of every instance in DIR/state.json (health checks in parallel)."""
    state = read_state(Path(directory).resolve())
    if state is None:
        raise LaunchError(f"no {STATE_FILE} in {directory}: is the stack up?")
    rows = [(t, i) for t, target in process_targets(state).items() for i in target.instances]

    def check(row: tuple[str, ProcessInstance]) -> InstanceStatus:
        target, instance = row
        running = is_running(instance)
        reason = "not running" if not running else problem(instance.health) if instance.health else None
        role = _role(target, instance) if running else None
        if running and reason is None and instance.role_url is not None:
            reason = _unsettled(instance.role_url, role)
        return InstanceStatus(target, instance.name, instance.pid, running, reason is None, role, reason)

    with ThreadPoolExecutor(max_workers=max(1, len(rows))) as pool:
        return list(pool.map(check, rows)) + _container_status(state) + _link_status(state)


def _container_status(state: StackDescription) -> list[InstanceStatus]:
    rows = []
    for target, name, pid, running, reason, role in containers.status_rows(state):
        if running and reason is None and role in UNSETTLED_ROLES:
            reason = f"role {role}: not settled in the election (neither leader nor follower)"
        rows.append(InstanceStatus(target, name, pid, running, running and reason is None, role, reason))
    return rows


def _unsettled(role_url: str, role: str | None) -> str | None:
    """Why a service's role is not a settled one (a candidate, or no answer), with how long if it says; else None."""
    reason = role_problem(role)
    if reason is None:
        return None
    try:
        status, body = http.get(role_url, 1.0)
        held = json.loads(body).get("role_for_s") if status == 200 else None
    except (OSError, ValueError, AttributeError):
        held = None
    return f"{reason} (for {float(held):.1f} s)" if isinstance(held, int | float) else reason


def _role(target: str, instance: ProcessInstance) -> str | None:
    """The live role: a service's (from its role URL), a Redis node's (primary or replica), a ZooKeeper server's."""
    try:
        if target == "redis":
            role = dict(redis_call(redis_address_of(instance), "INFO", "replication")).get("role")
            return {"master": "primary", "slave": "replica"}.get(str(role), role)
        if target == "zookeeper":
            return srvr_mode(zookeeper_address_of(instance))
    except (RedisError, OSError):
        return None
    return role_of(instance)


def _link_status(state: StackDescription) -> list[InstanceStatus]:
    """Each link's proxy: present, enabled, and free of toxics (a leftover fault shows here)."""
    links = {name: t for name, t in state.targets.items() if isinstance(t, LinkTarget)}
    if not links or state.toxiproxy is None:
        return []
    try:
        proxies = ToxiproxyClient(state.toxiproxy.url, state.toxiproxy.timeout_s).proxies()
        unreachable = None
    except ToxiproxyError as exc:
        proxies, unreachable = {}, str(exc)
    rows = []
    for target, group in links.items():
        for link in group.instances:
            proxy = proxies.get(link.proxy)
            reason = unreachable or (None if proxy else f"no proxy {link.proxy}")
            if proxy is not None and not proxy.enabled:
                reason = "link down (proxy disabled)"
            elif proxy is not None and proxy.toxics:
                reason = "toxics: " + ", ".join(f"{t.type} {t.stream}" for t in proxy.toxics)
            rows.append(InstanceStatus(target, link.name, None, proxy is not None, reason is None, None, reason))
    return rows


def status_dicts(rows: list[InstanceStatus]) -> list[dict[str, object]]:
    return [asdict(row) for row in rows]
