"""Benchmark: Redis Sentinel failover time and ZooKeeper leader election time on this machine.

Usage: ``.venv/bin/python bench/failover_times.py [--rounds 5]``

Starts, in a temporary directory on 127.0.0.1, exactly the middleware of the reference stack's
``ha`` profile (tradingstack/topology.py): Redis primary + replica + 3 Sentinels, and a 3-node
ZooKeeper ensemble. Each round SIGKILLs the current Redis primary and measures the time until a
majority of the Sentinels name another one (polled every 10 ms), then SIGKILLs the current ZooKeeper leader and
measures the time until another node reports ``Mode: leader`` to ``srvr``. Between rounds the killed
node is restarted from its command line and data directory and the set is allowed to settle. Prints
every round, the median, min and max, and the settings they depend on.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clients.health import wait_healthy  # noqa: E402
from clients.procs import reap, spawn  # noqa: E402
from clients.redis_set import RedisSet  # noqa: E402
from clients.redis_set import address_of as redis_address_of  # noqa: E402
from clients.zk import Ensemble  # noqa: E402
from clients.zk import address_of as zookeeper_address_of  # noqa: E402
from stackspec.targets import ProcessInstance  # noqa: E402
from tradingstack import topology  # noqa: E402

POLL_S = 0.01
TIMEOUT_S = 30.0


def wait_until(what: str, condition: Callable[[], object], timeout_s: float = TIMEOUT_S) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(POLL_S)
    return time.monotonic() - started


def redis_set(nodes: list[ProcessInstance], sentinels: list[ProcessInstance]) -> RedisSet:
    return RedisSet(
        nodes={n.name: redis_address_of(n) for n in nodes},
        sentinels=tuple(redis_address_of(s) for s in sentinels),
        master=topology.SENTINEL_MASTER,
    )


def ensemble_of(nodes: list[ProcessInstance]) -> Ensemble:
    return Ensemble(nodes={n.name: zookeeper_address_of(n) for n in nodes})


def restart(instance: ProcessInstance) -> ProcessInstance:
    assert instance.pid is not None
    reap(instance.pid)
    again = spawn(instance)
    assert again.health is not None
    wait_healthy(again.health, TIMEOUT_S)
    return again


def kill(instance: ProcessInstance) -> None:
    assert instance.pid is not None
    os.kill(instance.pid, signal.SIGKILL)


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<28} median {statistics.median(values):6.2f} s   min {min(values):6.2f} s   "
        f"max {max(values):6.2f} s   (n={len(values)})"
    )


def middleware(directory: Path) -> tuple[list[ProcessInstance], list[ProcessInstance], list[ProcessInstance]]:
    """The ha profile's Redis nodes, Sentinels and ZooKeeper ensemble in `directory`, on free ports (not started)."""
    (directory / "logs").mkdir()
    ports = topology.free_ports(14)
    nodes = [
        topology.redis_node_instance(directory, "redis-1", ports[0]),
        topology.redis_node_instance(directory, "redis-2", ports[1], replica_of=ports[0]),
    ]
    sentinels = [topology.sentinel_instance(directory, f"sentinel-{n}", ports[1 + n], ports[0]) for n in (1, 2, 3)]
    triples = [(ports[i], ports[i + 1], ports[i + 2]) for i in (5, 8, 11)]
    return nodes, sentinels, topology.zookeeper_ensemble(directory, triples)


def start_all(nodes: list[ProcessInstance], sentinels: list[ProcessInstance], ensemble: list[ProcessInstance]) -> None:
    """Spawn every instance (the started one replaces it in its list); wait until all are healthy and settled."""
    live: list[ProcessInstance] = []
    for group in (nodes, sentinels, ensemble):
        for i, instance in enumerate(group):
            group[i] = spawn(instance)
            live.append(group[i])
    for instance in live:
        assert instance.health is not None
        wait_healthy(instance.health, TIMEOUT_S)
    redis_set(nodes, sentinels).wait_settled(TIMEOUT_S)
    ensemble_of(ensemble).wait_healthy(TIMEOUT_S)


def sentinel_failover(nodes: list[ProcessInstance], sentinels: list[ProcessInstance]) -> float:
    """SIGKILL the Redis primary; seconds until the Sentinels promote another. The killed node is restarted."""
    watched = redis_set(nodes, sentinels)
    old = watched.primary()
    index = next(i for i, n in enumerate(nodes) if n.name == old)
    kill(nodes[index])
    promoted = wait_until("Sentinel to promote", watched.promoted_from(old))
    nodes[index] = restart(nodes[index])
    redis_set(nodes, sentinels).wait_settled(TIMEOUT_S)
    return promoted


def zookeeper_election(ensemble: list[ProcessInstance]) -> float:
    """SIGKILL the ZooKeeper leader; seconds until another node leads. The killed node is restarted."""
    servers = ensemble_of(ensemble)
    leader = next(i for i, z in enumerate(ensemble) if z.name == servers.leader())
    kill(ensemble[leader])
    others = [z.name for i, z in enumerate(ensemble) if i != leader]
    elected = wait_until("a new ZooKeeper leader", partial(servers.leader, others))
    ensemble[leader] = restart(ensemble[leader])
    ensemble_of(ensemble).wait_healthy(TIMEOUT_S)
    return elected


def stop_all(instances: list[ProcessInstance]) -> None:
    """SIGTERM and reap the current process of each instance that was started."""
    for instance in instances:
        if instance.pid is not None:
            try:
                os.kill(instance.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            reap(instance.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="kills of each kind (default 5, at most 20)")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 20))
    with tempfile.TemporaryDirectory(prefix="failover-bench-") as tmp:
        nodes, sentinels, ensemble = middleware(Path(tmp))
        try:
            start_all(nodes, sentinels, ensemble)
            promotions: list[float] = []
            elections: list[float] = []
            for round_ in range(1, rounds + 1):
                promoted = sentinel_failover(nodes, sentinels)
                promotions.append(promoted)
                elected = zookeeper_election(ensemble)
                elections.append(elected)
                print(
                    f"round {round_}: Sentinel promoted a replica in {promoted:.2f} s; "
                    f"ZooKeeper elected a leader in {elected:.2f} s",
                    flush=True,
                )
        finally:
            stop_all(nodes + sentinels + ensemble)  # the current process of each (restarts included)
    print()
    print(summary("Sentinel failover (SIGKILL)", promotions))
    print(summary("ZooKeeper election (SIGKILL)", elections))
    print(
        f"settings: down-after-milliseconds {topology.SENTINEL_DOWN_AFTER_MS}, failover-timeout "
        f"{topology.SENTINEL_FAILOVER_TIMEOUT_MS} ms, quorum 2 of 3 Sentinels; ZooKeeper tickTime "
        f"{topology.ZOOKEEPER_TICK_MS} ms, 3 nodes, initLimit 10, syncLimit 4; polled every {POLL_S * 1000:g} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
