"""Real HA servers for injector tests: a Redis primary + replica + 3 Sentinels, a 3-node ZooKeeper ensemble.

Built with the reference stack's own builders (tradingstack.topology), started with `spawn`, and
always stopped by PID — every process started here and every one an injector restarted into the
LiveStack — so a failing test leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.health import problem
from clients.procs import is_running, spawn, wait_exit
from clients.redis_set import RedisSet
from clients.zk import Ensemble
from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan, FaultSpec, Injector
from injectors.redis.common import redis_set_of
from injectors.zookeeper.common import ensemble_of
from stackspec.targets import ProcessInstance, ProcessTarget, SshHost, StackDescription, Target
from tests.support.helpers import READY_TIMEOUT_S, wait_ready
from tradingstack.topology import (
    SENTINEL_MASTER,
    free_ports,
    redis_node_instance,
    sentinel_instance,
    zookeeper_ensemble,
)


def _start(instance: ProcessInstance, started: list[ProcessInstance]) -> ProcessInstance:
    live = spawn(instance)
    started.append(live)
    return live


def _ready(instances: list[ProcessInstance]) -> None:
    """Each instance answers its own health check; one that exits fails at once, with its log."""
    for instance in instances:
        health = instance.health
        assert health is not None
        log = Path(instance.log) if instance.log else None
        wait_ready(
            instance.name, functools.partial(problem, health), alive=functools.partial(is_running, instance), log=log
        )


def start_redis(directory: Path, started: list[ProcessInstance]) -> dict[str, Target]:
    """redis-1 (primary), redis-2 (its replica) and sentinel-1..3, as the launcher's `ha` profile lays them out."""
    primary_port, replica_port, *sentinel_ports = free_ports(5)
    nodes = []
    for name, port, replica_of in (("redis-1", primary_port, None), ("redis-2", replica_port, primary_port)):
        nodes.append(_start(redis_node_instance(directory, name, port, replica_of), started))
    _ready(nodes)
    sentinels = [
        _start(sentinel_instance(directory, f"sentinel-{n}", port, primary_port), started)
        for n, port in enumerate(sentinel_ports, start=1)
    ]
    _ready(sentinels)
    targets: dict[str, Target] = {
        "redis": ProcessTarget(description="Redis primary and replica", instances=nodes),
        "sentinel": ProcessTarget(description="Redis Sentinels", instances=sentinels),
    }
    # Sentinels find the replica and each other within a few seconds (hello messages every 2 s).
    redis_set(LiveStack(StackDescription(name="ha-start", targets=targets), None)).wait_settled(READY_TIMEOUT_S)
    return targets


def start_zookeeper(directory: Path, started: list[ProcessInstance]) -> dict[str, Target]:
    """zookeeper-1..3 on loopback, started together (none is serving before a quorum is up)."""
    ports = free_ports(9)
    triples = [(ports[i], ports[i + 1], ports[i + 2]) for i in range(0, 9, 3)]
    nodes = [_start(node, started) for node in zookeeper_ensemble(directory, triples)]
    _ready(nodes)
    return {"zookeeper": ProcessTarget(description="ZooKeeper ensemble", instances=nodes)}


def stop(instances: list[ProcessInstance]) -> None:
    """SIGKILL (after SIGCONT, in case it is frozen) every instance still running as recorded; reap our children."""
    for instance in instances:
        if instance.pid is not None and is_running(instance):
            with contextlib.suppress(ProcessLookupError):
                os.kill(instance.pid, signal.SIGCONT)
                os.kill(instance.pid, signal.SIGKILL)
            wait_exit(instance.pid, 10)


def processes(stack: LiveStack) -> list[ProcessInstance]:
    return [
        i for group in stack.description.targets.values() if isinstance(group, ProcessTarget) for i in group.instances
    ]


@contextlib.contextmanager
def ha_stack(directory: Path, *, redis: bool = False, zookeeper: bool = False) -> Iterator[LiveStack]:
    """A LiveStack of the chosen server sets, running until the block ends (then every process is killed)."""
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    started: list[ProcessInstance] = []
    live: LiveStack | None = None
    try:
        targets: dict[str, Target] = {}
        if redis:
            targets |= start_redis(directory, started)
        if zookeeper:
            targets |= start_zookeeper(directory, started)
        live = LiveStack(StackDescription(name="ha-test", profile="ha", targets=targets), directory / "state.json")
        yield live
    finally:
        stop(started + (processes(live) if live is not None else []))


@contextlib.contextmanager
def on_host(stack: LiveStack, host: SshHost, state: Path) -> Iterator[LiveStack]:
    """The same servers, described as running on `host` (reached over SSH: this machine, through a real sshd).

    Every process the remote stack records (the ones its faults restarted over SSH) is killed at the end,
    looked at here: it is the same machine.
    """
    targets: dict[str, Target] = {
        name: group.model_copy(update={"instances": [i.model_copy(update={"host": host}) for i in group.instances]})
        if isinstance(group, ProcessTarget)
        else group
        for name, group in stack.description.targets.items()
    }
    remote = LiveStack(stack.description.model_copy(update={"name": "ha-remote", "targets": targets}), state)
    try:
        yield remote
    finally:
        stop([i.model_copy(update={"host": None}) for i in processes(remote)])


def started(tmp_path_factory: pytest.TempPathFactory, **which: bool) -> Iterator[LiveStack]:
    """Body of a module-scoped fixture: `yield from started(tmp_path_factory, redis=True)`."""
    with ha_stack(tmp_path_factory.mktemp("-".join(which)), **which) as live:
        yield live


def healthy(stack: LiveStack, timeout_s: float = 30) -> LiveStack:
    """Wait until every HA set of the stack is healthy again, whichever node now leads; returns the stack."""
    if "redis" in stack.description.targets:
        redis_set(stack).wait_settled(timeout_s)
    if "zookeeper" in stack.description.targets:
        ensemble(stack).wait_healthy(timeout_s)
    return stack


def plan_for(injector: Injector[FaultSpec], stack: LiveStack, target: str) -> FaultPlan:
    refs = injector.resolve(target, None, ctx_for(stack))
    return FaultPlan(kind=injector.kind, target=target, params=injector.spec.model_dump(), targets=refs)


def ctx_for(stack: LiveStack, seed: int = 7) -> EngineContext:
    return EngineContext("ha-test", stack, seed=seed, bus=EventBus())


def instance(stack: LiveStack, target: str, name: str) -> ProcessInstance:
    group = stack.target(target)
    assert isinstance(group, ProcessTarget)
    return next(i for i in group.instances if i.name == name)


def redis_set(stack: LiveStack) -> RedisSet:
    return redis_set_of("redis", "sentinel", SENTINEL_MASTER, ctx_for(stack))


def ensemble(stack: LiveStack) -> Ensemble:
    return ensemble_of("zookeeper", ctx_for(stack))
