"""The Redis/Sentinel view's pure parts: Sentinel reply parsing, instance addresses, naming nodes by address."""

from __future__ import annotations

from typing import Any

import pytest

from clients.errors import NotFoundError
from clients.redis_set import RedisSet, address_of, pairs
from stackspec.targets import HttpHealth, ProcessInstance, RedisHealth

# What SENTINEL MASTER answers, as redis-py hands it over in RESP2 (flat pairs) and RESP3 (a map).
FLAT = ["name", "trading", "ip", "127.0.0.1", "port", 6380, "flags", "master", "config-epoch", "3"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (FLAT, {"name": "trading", "ip": "127.0.0.1", "port": "6380", "flags": "master", "config-epoch": "3"}),
        (
            {"ip": "127.0.0.1", "port": 6380, "num-other-sentinels": 2},
            {"ip": "127.0.0.1", "port": "6380", "num-other-sentinels": "2"},
        ),
        ([], {}),
        (None, {}),
        (["flags", "s_down,slave", "dangling"], {"flags": "s_down,slave"}),  # an odd key without a value is dropped
    ],
)
def test_pairs_reads_flat_resp2_pairs_and_resp3_maps_as_strings(reply: Any, expected: dict[str, str]) -> None:
    assert pairs(reply) == expected


def test_address_of_prefers_the_redis_health_check_then_the_client_port() -> None:
    checked = ProcessInstance(name="redis-1", argv=["redis-server"], health=RedisHealth(redis="10.0.0.5:6379"))
    assert address_of(checked) == "10.0.0.5:6379"
    by_port = ProcessInstance(name="sentinel-1", argv=["redis-server"], ports={"client": 26379})
    assert address_of(by_port) == "127.0.0.1:26379"
    other = ProcessInstance(name="web", argv=["web"], health=HttpHealth(http="http://x/health"))
    with pytest.raises(NotFoundError, match="'web' has no Redis health check and no `client` port"):
        address_of(other)


def test_name_of_matches_host_and_port_or_else_the_only_node_on_that_port() -> None:
    nodes = RedisSet(nodes={"redis-1": "127.0.0.1:6380", "redis-2": "127.0.0.1:6381"}, sentinels=(), master="trading")
    assert nodes.name_of("127.0.0.1:6381") == "redis-2"
    assert nodes.name_of("localhost:6380") == "redis-1"  # Sentinel may spell the host differently
    assert nodes.name_of("127.0.0.1:7000") is None and nodes.name_of(None) is None
    clash = RedisSet(nodes={"a": "10.0.0.1:6379", "b": "10.0.0.2:6379"}, sentinels=(), master="m")
    assert clash.name_of("10.0.0.9:6379") is None  # two nodes on that port: no guessing
