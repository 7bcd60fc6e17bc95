"""Deploys the reference stack on this host and keeps DIR/state.json, a StackDescription, current.

The waits for each stage live in `tradingstack.readiness`, the state file in `tradingstack.state` and
`status` in `tradingstack.status`; this module starts and stops.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from clients.procs import is_running, spawn, wait_exit
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tradingstack import containers, hosts_launch, topology
from tradingstack.hosts import RECORD as HOSTS_RECORD
from tradingstack.processes import REPO_ROOT
from tradingstack.readiness import check_links, left, seed_store, wait_leader, wait_ready, wait_sentinels
from tradingstack.state import (
    STATE_FILE,
    LaunchError,
    StackRunningError,
    StackStartError,
    log_tail,
    process_targets,
    read_state,
    write_state,
)
from tradingstack.status import InstanceStatus, stack_status, status_dicts

__all__ = [
    "REPO_ROOT",
    "STATE_FILE",
    "InstanceStatus",
    "LaunchError",
    "StackRunningError",
    "StackStartError",
    "log_tail",
    "read_state",
    "stack_status",
    "start_stack",
    "status_dicts",
    "stop_stack",
    "write_state",
]

log = logging.getLogger("tradingstack.launcher")
STOP_ORDER = ("gateway", "matcher", "toxiproxy", "zookeeper", "sentinel", "redis")


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


def _refuse_if_running(directory: Path) -> None:
    state = read_state(directory) if (directory / STATE_FILE).exists() else None
    if state is None:
        return
    live = [i.name for t in process_targets(state).values() for i in t.instances if is_running(i)]
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
    if profile == "hosts":  # fixed ports on hosts of its own: no port to be taken
        _refuse_if_running(Path(directory))
        return hosts_launch.start_stack(directory, timeout_s=max(timeout_s, 90.0), session_timeout_s=session_timeout_s)
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
        core += launch("toxiproxy", topology.TOXIPROXY_SUMMARY, [plan.toxiproxy])
        wait_ready(core, deadline)
        if "sentinel" in description.targets:
            wait_sentinels(description, deadline)
        check_links(description, plan.links)
        seed_store(description.endpoints["redis"])
        if profile == "containers":
            _launch_containers(directory, description, plan.matchers, deadline)
            engines = []
        else:
            engines = launch("matcher", topology.MATCHER_SUMMARY, plan.matchers)
        front = launch("gateway", topology.GATEWAY_SUMMARY, plan.gateways)
        wait_ready(engines + front, deadline)
        if engines:
            wait_leader(engines, deadline)
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
    try:
        target = containers.start(directory, matchers, "matcher", topology.CONTAINER_MATCHER_SUMMARY)
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
        if wait_exit(instance.pid, left(deadline)) is not None:
            report.append(f"stopped {instance.name} (pid {instance.pid})")
        elif is_running(instance):
            os.kill(instance.pid, signal.SIGKILL)
            wait_exit(instance.pid, 5.0)
            report.append(f"killed {instance.name} (pid {instance.pid}) after {timeout_s:.0f} s")
    return report


def stop_stack(directory: Path, timeout_s: float = 10.0) -> list[str]:
    """Stop the stack in reverse dependency order, only PIDs we started; remove state.json, keep logs."""
    directory = Path(directory).resolve()
    if (directory / "hosts" / HOSTS_RECORD).exists():  # a hosts stack, or what a crashed `up` of one left
        return hosts_launch.stop_stack(directory, timeout_s)
    state = read_state(directory)
    if state is None:
        return [f"no {STATE_FILE} in {directory}: nothing to stop"]
    processes = process_targets(state)
    order = [t for t in STOP_ORDER if t in processes] + [t for t in processes if t not in STOP_ORDER]
    report = containers.remove_stack_containers(state)
    for target in order:
        instances = processes[target].instances
        report += [f"{i.name} was not running" for i in instances if i.pid is None or not is_running(i)]
        report += _terminate(instances, timeout_s)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return report
