"""The ha profile for real: Sentinel-managed Redis, a 3-node ZooKeeper ensemble, failover under orders."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from clients.procs import reap
from engine.stack import reference_targets
from stackspec.targets import LinkTarget, ProcessInstance, ProcessTarget, StackDescription
from tests.tradingstack.support import call, cli, place, shape, wait_for
from tradingstack.describe import describe
from tradingstack.launcher import read_state, start_stack, stop_stack
from tradingstack.topology import SENTINEL_MASTER

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("ha")
    started = time.monotonic()
    try:
        start_stack(directory, profile="ha", timeout_s=30)  # the bound: up within 30 s
        print(f"\nha stack up in {time.monotonic() - started:.2f} s")
        yield directory
    finally:
        stop_stack(directory)


def processes(directory: Path, target: str) -> list[ProcessInstance]:
    description = read_state(directory)
    assert description is not None
    group = description.targets[target]
    assert isinstance(group, ProcessTarget)
    return group.instances


def primary_port(sentinel: ProcessInstance) -> int:
    client: Any = redis.Redis(port=sentinel.ports["client"], socket_timeout=1, decode_responses=True)
    try:
        _, port = client.execute_command("SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
        return int(port)
    finally:
        client.close()


def zk_mode(node: ProcessInstance) -> str:
    with socket.create_connection(("127.0.0.1", node.ports["client"]), timeout=2) as sock:
        sock.sendall(b"srvr")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    modes = [line.split(":", 1)[1].strip() for line in answer.decode().splitlines() if line.startswith("Mode:")]
    return modes[0] if modes else "not serving"


def test_the_ha_stack_is_production_shaped(stack: Path) -> None:
    description = StackDescription.model_validate_json((stack / "state.json").read_text())
    assert description.profile == "ha"
    assert [n.name for n in processes(stack, "redis")] == ["redis-1", "redis-2"]
    assert [n.name for n in processes(stack, "sentinel")] == ["sentinel-1", "sentinel-2", "sentinel-3"]
    nodes = processes(stack, "zookeeper")
    assert sorted(zk_mode(n) for n in nodes) == ["follower", "follower", "leader"]
    primary = processes(stack, "redis")[0].ports["client"]
    assert {primary_port(s) for s in processes(stack, "sentinel")} == {primary}
    assert description.endpoints["redis"].startswith("sentinel://")
    assert "matcher->redis" not in description.targets  # services follow Sentinel to the primary directly
    links = description.targets["matcher->zookeeper"]
    assert isinstance(links, LinkTarget)
    assert sorted(i.name for i in links.instances) == sorted(
        f"matcher-{m}->zookeeper-{z}" for m in (1, 2) for z in (1, 2, 3)
    )
    report = json.loads(cli("status", "--dir", str(stack), "--json").stdout)
    assert report["healthy"] is True, [row for row in report["instances"] if not row["healthy"]]
    assert shape(description) == shape(describe("ha"))
    assert {name: t.kind for name, t in description.targets.items()} == reference_targets("ha")


def test_orders_survive_the_loss_of_the_redis_primary(stack: Path) -> None:
    description = read_state(stack)
    assert description is not None
    gw = description.endpoints["gateway"]
    status, before = place(gw, "ACC0071", "600000", "sell", 10, 20.0)
    assert status == 201
    sentinels = processes(stack, "sentinel")
    old = next(n for n in processes(stack, "redis") if n.ports["client"] == primary_port(sentinels[0]))
    (replica,) = [n for n in processes(stack, "redis") if n.name != old.name]
    replica_client: Any = redis.Redis(port=replica.ports["client"], socket_timeout=1)
    # Semi-synchronous: the order was acknowledged only once the replica held it.
    assert replica_client.exists(f"ts:order:{before['order_id']}") == 1
    replica_client.close()
    assert old.pid is not None
    os.kill(old.pid, signal.SIGKILL)
    reap(old.pid)
    promoted = wait_for(
        "Sentinel to promote the replica", lambda: primary_port(sentinels[0]) != old.ports["client"], 15
    )
    resumed = wait_for(
        "order entry on the new primary", lambda: place(gw, "ACC0072", "600000", "buy", 1, 1.0)[0] == 201, 15
    )
    print(f"\nreplica promoted {promoted:.2f} s after SIGKILL; orders accepted {resumed:.2f} s after that")
    assert call("GET", f"{gw}/orders/{before['order_id']}") == (200, before)
