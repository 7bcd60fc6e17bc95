"""Benchmark: Redis Sentinel failover time and ZooKeeper leader election time on this machine.

Usage: ``.venv/bin/python bench/failover_times.py [--rounds 5]``

Starts, in a temporary directory on 127.0.0.1, exactly the middleware of the reference stack's
``ha`` profile (tradingstack/topology.py): Redis primary + replica + 3 Sentinels, and a 3-node
ZooKeeper ensemble. Each round SIGKILLs the current Redis primary and measures the time until the
Sentinels name another one (polled every 10 ms), then SIGKILLs the current ZooKeeper leader and
measures the time until another node reports ``Mode: leader`` to ``srvr``. Between rounds the killed
node is restarted from its command line and data directory and the set is allowed to settle. Prints
every round, the median, min and max, and the settings they depend on.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from injectors.health import wait_healthy  # noqa: E402
from injectors.process import reap, spawn  # noqa: E402
from injectors.targets import ProcessInstance  # noqa: E402
from tradingstack import topology  # noqa: E402

POLL_S = 0.01
TIMEOUT_S = 30.0


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what} did not happen within {timeout_s:g} s")
        time.sleep(POLL_S)
    return time.monotonic() - started


def ask(port: int, *command: str) -> Any:
    client: Any = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True)
    try:
        return client.execute_command(*command)
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def primary_port(sentinel: ProcessInstance) -> int | None:
    answer = ask(sentinel.ports["client"], "SENTINEL", "get-master-addr-by-name", topology.SENTINEL_MASTER)
    return int(answer[1]) if answer else None


def primary_moved(sentinel: ProcessInstance, old: int | None) -> Callable[[], bool]:
    return lambda: primary_port(sentinel) not in (old, None)


def leader_among(nodes: list[ProcessInstance]) -> Callable[[], bool]:
    return lambda: "leader" in [zk_mode(z) for z in nodes]


def redis_settled(nodes: list[ProcessInstance], sentinels: list[ProcessInstance]) -> bool:
    """One primary, the one every Sentinel names; every other node a replica in sync with it."""
    named = {primary_port(s) for s in sentinels}
    if len(named) != 1:
        return False
    for node in nodes:
        info = ask(node.ports["client"], "INFO", "replication")
        expected = "master" if node.ports["client"] in named else "slave"
        if not info or info["role"] != expected:
            return False  # e.g. a restarted old primary Sentinel has not turned into a replica yet
        if expected == "slave" and (info.get("master_link_status") != "up" or int(info["master_port"]) not in named):
            return False
    replicas = [ask(s.ports["client"], "SENTINEL", "REPLICAS", topology.SENTINEL_MASTER) or [] for s in sentinels]
    return all(sum("s_down" not in r.get("flags", "") for r in seen) == len(nodes) - 1 for seen in replicas)


def zk_mode(node: ProcessInstance) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", node.ports["client"]), timeout=0.5) as sock:
            sock.sendall(b"srvr")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="kills of each kind (default 5, at most 20)")
    args = parser.parse_args()
    rounds = max(1, min(args.rounds, 20))
    with tempfile.TemporaryDirectory(prefix="failover-bench-") as tmp:
        directory = Path(tmp)
        (directory / "logs").mkdir()
        ports = topology.free_ports(14)
        nodes = [
            topology.redis_node_instance(directory, "redis-1", ports[0]),
            topology.redis_node_instance(directory, "redis-2", ports[1], replica_of=ports[0]),
        ]
        sentinels = [topology.sentinel_instance(directory, f"sentinel-{n}", ports[1 + n], ports[0]) for n in (1, 2, 3)]
        triples = [(ports[i], ports[i + 1], ports[i + 2]) for i in (5, 8, 11)]
        ensemble = topology.zookeeper_ensemble(directory, triples)
        live: list[ProcessInstance] = []
        try:
            for group in (nodes, sentinels, ensemble):
                for i, instance in enumerate(group):
                    group[i] = spawn(instance)
                    live.append(group[i])
            for instance in live:
                assert instance.health is not None
                wait_healthy(instance.health, TIMEOUT_S)
            wait_until("Redis replication to settle", lambda: redis_settled(nodes, sentinels))
            wait_until("a ZooKeeper leader", lambda: [zk_mode(z) for z in ensemble].count("leader") == 1)

            promotions, elections = [], []
            for round_ in range(1, rounds + 1):
                old_port = primary_port(sentinels[0])
                index = next(i for i, n in enumerate(nodes) if n.ports["client"] == old_port)
                kill(nodes[index])
                promoted = wait_until("Sentinel to promote", primary_moved(sentinels[0], old_port))
                promotions.append(promoted)
                nodes[index] = restart(nodes[index])
                wait_until("Redis replication to settle", lambda: redis_settled(nodes, sentinels))

                leader = next(i for i, z in enumerate(ensemble) if zk_mode(z) == "leader")
                kill(ensemble[leader])
                others = [z for i, z in enumerate(ensemble) if i != leader]
                elected = wait_until("a new ZooKeeper leader", leader_among(others))
                elections.append(elected)
                ensemble[leader] = restart(ensemble[leader])
                wait_until(
                    "the ensemble to settle",
                    lambda: sorted(str(zk_mode(z)) for z in ensemble) == ["follower", "follower", "leader"],
                )
                print(
                    f"round {round_}: Sentinel promoted a replica in {promoted:.2f} s; "
                    f"ZooKeeper elected a leader in {elected:.2f} s",
                    flush=True,
                )
        finally:
            for instance in nodes + sentinels + ensemble:  # the current process of each (restarts included)
                if instance.pid is not None:
                    try:
                        os.kill(instance.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        continue
                    reap(instance.pid)
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
