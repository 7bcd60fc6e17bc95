"""ZooKeeper's pure parts: the Mode of a `srvr` answer, and a server's client address."""

from __future__ import annotations

import pytest

from clients.errors import NotFoundError
from clients.zk import ZK_SERVING_MODES, Ensemble, address_of, parse_srvr_mode, srvr_mode
from stackspec.targets import ProcessInstance, RedisHealth, ZooKeeperHealth
from tests.support.helpers import free_port

SRVR = """Zookeeper version: 3.8.0-debian--1, built on 2022-05-09 00:00 UTC
Latency min/avg/max: 0/0.1/4
Received: 120
Sent: 119
Connections: 2
Outstanding: 0
Zxid: 0x200000004
Mode: {mode}
Node count: 7
"""


@pytest.mark.parametrize("mode", ["leader", "follower", "standalone", "observer"])
def test_the_mode_line_of_a_serving_server(mode: str) -> None:
    assert parse_srvr_mode(SRVR.format(mode=mode)) == mode and mode in ZK_SERVING_MODES


@pytest.mark.parametrize(
    "text",
    ["This ZooKeeper instance is not currently serving requests\n", "", "Mode:\n", "Zookeeper version: 3.8.0\n"],
)
def test_no_mode_when_the_server_does_not_say_one(text: str) -> None:
    assert parse_srvr_mode(text) is None


def test_a_mode_line_with_windows_line_ends_and_spaces() -> None:
    assert parse_srvr_mode("Zxid: 0x1\r\nMode:   follower  \r\n") == "follower"


def test_srvr_mode_of_a_closed_port_is_none() -> None:
    assert srvr_mode(f"127.0.0.1:{free_port()}", timeout_s=0.5) is None


def test_address_of_prefers_the_zookeeper_health_check_then_the_client_port() -> None:
    checked = ProcessInstance(name="zk-1", argv=["java"], health=ZooKeeperHealth(zookeeper="10.0.0.7:2181"))
    assert address_of(checked) == "10.0.0.7:2181"
    assert address_of(ProcessInstance(name="zk-2", argv=["java"], ports={"client": 2182})) == "127.0.0.1:2182"
    wrong = ProcessInstance(name="zk-3", argv=["java"], health=RedisHealth(redis="127.0.0.1:1"))
    with pytest.raises(NotFoundError, match="'zk-3' has no ZooKeeper health check"):
        address_of(wrong)


def test_an_ensemble_of_closed_ports_is_not_healthy_and_says_each_server() -> None:
    ensemble = Ensemble(nodes={"zk-1": f"127.0.0.1:{free_port()}", "zk-2": f"127.0.0.1:{free_port()}"})
    problem, leader = ensemble.look()
    assert (
        leader is None
        and problem == "not every server serves as leader or follower (zk-1=not serving, zk-2=not serving)"
    )
