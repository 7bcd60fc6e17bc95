"""Deploys the reference stack on this host and keeps DIR/state.json, a StackDescription, current."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from redis.exceptions import RedisError

from clients import http
from clients.errors import NotSettledError
from clients.health import UNSETTLED_ROLES, problem, role_problem
from clients.procs import is_running, role_of, spawn, wait_exit
from clients.redis_set import RedisSet, redis_call
from clients.redis_set import address_of as redis_address_of
from clients.toxiproxy import ToxiproxyClient, ToxiproxyError
from clients.zk import address_of as zookeeper_address_of
from clients.zk import srvr_mode
from stackspec.targets import (
    LinkInstance,
    LinkTarget,
    ProcessInstance,
    ProcessTarget,
    StackDescription,
)
from tradingstack import containers, topology
from tradingstack.store import Store, connect

STATE_FILE = "state.json"
log = logging.getLogger("tradingstack.launcher")
STOP_ORDER = ("gateway", "matcher", "toxiproxy", "zookeeper", "sentinel", "redis")
REPO_ROOT = Path(__file__).resolve().parent.parent
ZOOKEEPER_CLASSPATH = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
JVM_OPTIONS = ("-Xms16m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


class LaunchError(Exception):
    """The reference stack could not be started or stopped as asked (engine.errors.StackError is the engine's)."""


class StackRunningError(LaunchError):
    """DIR already holds a stack with live processes."""


class StackStartError(LaunchError):
    """A component did not come up; carries its name and the tail of its log."""

    def __init__(self, component: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
        self.log_tail = log_tail


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


def _process_targets(state: StackDescription) -> dict[str, ProcessTarget]:
    return {name: t for name, t in state.targets.items() if isinstance(t, ProcessTarget)}


def read_state(directory: Path) -> StackDescription | None:
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    return StackDescription.model_validate_json(path.read_text())


def write_state(directory: Path, description: StackDescription) -> None:
    """Write state.json atomically (temp file + rename), so readers never see half a file."""
    path = Path(directory) / STATE_FILE
    temp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    temp.write_text(description.model_dump_json(indent=2) + "\n")
    os.replace(temp, path)


def log_tail(path: str | None, lines: int = 20) -> str:
    if path is None or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def _start(instance: ProcessInstance) -> ProcessInstance:
    assert instance.log is not None
    Path(instance.log).parent.mkdir(parents=True, exist_ok=True)
    with open(instance.log, "a") as log:
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"=== {now} starting {instance.name}: {' '.join(instance.argv)}\n")
    try:
        return spawn(instance)
    except OSError as exc:
        raise StackStartError(instance.name, f"could not start {instance.argv[0]}: {exc}") from exc


def _wait_ready(instances: list[ProcessInstance], deadline: float) -> None:
    pending = list(instances)
    while pending:
        for instance in list(pending):
            if not is_running(instance):
                raise StackStartError(instance.name, "exited during start-up", log_tail(instance.log))
            if instance.health is None or problem(instance.health) is None:
                pending.remove(instance)
        if pending and time.monotonic() > deadline:
            first = pending[0]
            reason = problem(first.health) if first.health else "unknown"
            raise StackStartError(first.name, f"not ready in time: {reason}", log_tail(first.log))
        if pending:
            time.sleep(0.05)


def _check_links(description: StackDescription, links: list[LinkInstance]) -> None:
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


def _wait_sentinels(description: StackDescription, deadline: float) -> None:
    """One primary, the one every Sentinel names; the replica in sync; every Sentinel sees its peers."""
    targets = _process_targets(description)
    redis_set = RedisSet(
        nodes={i.name: redis_address_of(i) for i in targets["redis"].instances},
        sentinels=tuple(redis_address_of(i) for i in targets["sentinel"].instances),
        master=topology.SENTINEL_MASTER,
    )
    try:
        redis_set.wait_settled(max(0.0, deadline - time.monotonic()))
    except NotSettledError as exc:
        raise StackStartError("sentinel", f"Redis replication not settled in time: {exc}") from exc


def _wait_leader(matchers: list[ProcessInstance], deadline: float) -> None:
    """One leader, and every other engine queued as follower: `status` right after `up` is all healthy."""
    while True:
        roles = {m.name: role_of(m) for m in matchers}
        values = list(roles.values())
        if values.count("leader") == 1 and values.count("follower") == len(values) - 1:
            return
        if time.monotonic() > deadline:
            raise StackStartError("matcher", f"no single leader with the others following in time (roles: {roles})")
        time.sleep(0.05)


async def _seed(redis: str) -> bool:
    store = Store(connect(redis, timeout_s=2.0))
    try:
        return await store.seed()
    finally:
        await store.close()


def _refuse_if_running(directory: Path) -> None:
    state = read_state(directory) if (directory / STATE_FILE).exists() else None
    if state is None:
        return
    live = [i.name for t in _process_targets(state).values() for i in t.instances if is_running(i)]
    if live:
        raise StackRunningError(
            f"{directory} already runs a stack ({', '.join(live)} alive); "
            f"stop it first: python -m tradingstack down --dir {directory}"
        )


START_ATTEMPTS = 3
_PORT_TAKEN = ("address already in use", "bindexception")


def start_stack(
    directory: Path,
    *,
    profile: str = "basic",
    matchers: int = 2,
    ports: Mapping[str, int] | None = None,
    timeout_s: float = 60.0,
    session_timeout_s: float = 2.0,
) -> StackDescription:
    """Start Redis, ZooKeeper, the matchers and a gateway; return the description written to state.json.

    Redis and ZooKeeper data are fresh every time. On any failure everything started is stopped
    again and StackStartError names the component and carries the tail of its log. Free ports are
    chosen before the processes bind them; if another program takes one in between, the start is
    tried again (up to START_ATTEMPTS times) with new ports.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return _start_once(directory, profile, matchers, ports, timeout_s, session_timeout_s)
        except StackStartError as exc:
            taken = any(marker in f"{exc.reason}\n{exc.log_tail}".lower() for marker in _PORT_TAKEN)
            if not taken or attempt == START_ATTEMPTS:
                raise
            log.warning("a port was taken before %s could bind it; starting again with new ports", exc.component)
    raise AssertionError("unreachable")


def _start_once(
    directory: Path,
    profile: str,
    matchers: int,
    ports: Mapping[str, int] | None,
    timeout_s: float,
    session_timeout_s: float,
) -> StackDescription:
    directory = Path(directory).resolve()
    if profile not in topology.PROFILES:
        raise LaunchError(f"unknown profile {profile!r}; known: {', '.join(topology.PROFILES)}")
    if matchers < 1:
        raise LaunchError("--matchers must be at least 1")
    directory.mkdir(parents=True, exist_ok=True)
    _refuse_if_running(directory)
    deadline = time.monotonic() + timeout_s
    for data in ("redis", "zookeeper"):
        shutil.rmtree(directory / data, ignore_errors=True)
        (directory / data).mkdir(parents=True)
    try:
        plan = topology.lay_out(directory, profile, matchers, ports or {}, session_timeout_s)
    except topology.TopologyError as exc:
        raise LaunchError(str(exc)) from exc
    description = plan.description
    started: list[ProcessInstance] = []

    def launch(target: str, summary: str, instances: list[ProcessInstance]) -> list[ProcessInstance]:
        live = []
        for instance in instances:
            live.append(_start(instance))
            started.append(live[-1])
        description.targets[target] = ProcessTarget(description=summary, instances=live)
        write_state(directory, description)  # as early as possible, so `down` can clean up after a crash
        return live

    try:
        core = [instance for target, summary, group in plan.middleware for instance in launch(target, summary, group)]
        core += launch("toxiproxy", "Embedded Toxiproxy-API server carrying every link", [plan.toxiproxy])
        _wait_ready(core, deadline)
        if "sentinel" in description.targets:
            _wait_sentinels(description, deadline)
        _check_links(description, plan.links)
        asyncio.run(_seed(description.endpoints["redis"]))
        if profile == "containers":
            _launch_containers(directory, description, plan.matchers, deadline)
            engines = []
        else:
            engines = launch("matcher", "Matching engines, one leader elected through ZooKeeper", plan.matchers)
        front = launch("gateway", "Order gateway: the public HTTP API", plan.gateways)
        _wait_ready(engines + front, deadline)
        if engines:
            _wait_leader(engines, deadline)
        return description
    except BaseException:
        containers.remove_stack_containers(description)
        _terminate(list(reversed(started)), timeout_s=5.0)
        (directory / STATE_FILE).unlink(missing_ok=True)
        raise


def _launch_containers(
    directory: Path, description: StackDescription, matchers: list[ProcessInstance], deadline: float
) -> None:
    """The containers profile: the matching engines as containers, running and one of them leader."""
    summary = "Matching engines as containers (host network), one leader elected through ZooKeeper"
    try:
        target = containers.start(directory, matchers, "matcher", summary)
        description.targets["matcher"] = target
        write_state(directory, description)
        containers.wait_ready(target, matchers, deadline)
        containers.wait_leader(target, deadline)
    except containers.ContainerStackError as exc:
        raise StackStartError(exc.component, exc.reason, exc.log_tail) from exc


def _terminate(instances: Iterable[ProcessInstance], timeout_s: float) -> list[str]:
    """SIGTERM the instances that are still the processes we started; SIGKILL them after `timeout_s`."""
    report = []
    live = [i for i in instances if i.pid is not None and is_running(i)]
    for instance in live:
        assert instance.pid is not None
        os.kill(instance.pid, signal.SIGTERM)
        os.kill(instance.pid, signal.SIGCONT)  # a paused process would never act on SIGTERM
    deadline = time.monotonic() + timeout_s
    for instance in live:
        assert instance.pid is not None
        if wait_exit(instance.pid, max(0.0, deadline - time.monotonic())) is not None:
            report.append(f"stopped {instance.name} (pid {instance.pid})")
        elif is_running(instance):
            os.kill(instance.pid, signal.SIGKILL)
            wait_exit(instance.pid, 5.0)
            report.append(f"killed {instance.name} (pid {instance.pid}) after {timeout_s:.0f} s")
    return report


def stop_stack(directory: Path, timeout_s: float = 10.0) -> list[str]:
    """Stop the stack in reverse dependency order, only PIDs we started; remove state.json, keep logs."""
    directory = Path(directory).resolve()
    state = read_state(directory)
    if state is None:
        return [f"no {STATE_FILE} in {directory}: nothing to stop"]
    processes = _process_targets(state)
    order = [t for t in STOP_ORDER if t in processes] + [t for t in processes if t not in STOP_ORDER]
    report = containers.remove_stack_containers(state)
    for target in order:
        instances = processes[target].instances
        report += [f"{i.name} was not running" for i in instances if i.pid is None or not is_running(i)]
        report += _terminate(instances, timeout_s)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return report


def stack_status(directory: Path) -> list[InstanceStatus]:
    """Running, healthy and role of every instance in DIR/state.json (health checks in parallel)."""
    state = read_state(Path(directory).resolve())
    if state is None:
        raise LaunchError(f"no {STATE_FILE} in {directory}: is the stack up?")
    rows = [(t, i) for t, target in _process_targets(state).items() for i in target.instances]

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
