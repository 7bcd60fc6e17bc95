"""Plain TCP helpers: host:port parsing, a request/answer exchange, and an instance's client address."""

from __future__ import annotations

import socket
import threading

import pytest

from clients.errors import NotFoundError
from clients.tcp import client_address, exchange, split_hostport
from stackspec.targets import ProcessInstance, RedisHealth, TcpHealth, ZooKeeperHealth


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:6379", ("127.0.0.1", 6379)), ("[::1]:80", ("[::1]", 80)), ("redis.local:1", ("redis.local", 1))],
)
def test_split_hostport(address: str, expected: tuple[str, int]) -> None:
    assert split_hostport(address) == expected


@pytest.mark.parametrize("address", ["localhost", ":6379", "host:", "host:port"])
def test_split_hostport_refuses_what_is_not_host_and_port(address: str) -> None:
    with pytest.raises(ValueError, match="expected host:port"):
        split_hostport(address)


def test_exchange_reads_until_the_marker_or_the_close() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer_twice() -> None:
        for reply, close in ((b"+PONG\r\nlater", False), (b"Mode: leader\n", True)):
            conn, _ = server.accept()
            conn.recv(64)
            conn.sendall(reply)
            if close:
                conn.close()
            else:
                conn.recv(64)  # held open until the client hangs up
                conn.close()

    threading.Thread(target=answer_twice, daemon=True).start()
    try:
        assert exchange(f"127.0.0.1:{port}", b"PING\r\n", 2.0, until=b"\r\n").startswith(b"+PONG\r\n")
        assert exchange(f"127.0.0.1:{port}", b"srvr", 2.0) == b"Mode: leader\n"
    finally:
        server.close()


@pytest.mark.parametrize(
    ("health", "kind", "expected"),
    [
        (RedisHealth(redis="10.0.0.1:6379"), RedisHealth, "10.0.0.1:6379"),
        (ZooKeeperHealth(zookeeper="10.0.0.2:2181"), ZooKeeperHealth, "10.0.0.2:2181"),
        (TcpHealth(tcp="10.0.0.3:5432"), TcpHealth, "10.0.0.3:5432"),
        (TcpHealth(tcp="10.0.0.3:5432"), RedisHealth, "127.0.0.1:7000"),  # another kind of check: the client port
    ],
)
def test_client_address_reads_the_check_of_the_asked_kind(health: object, kind: type, expected: str) -> None:
    instance = ProcessInstance.model_validate({"name": "n", "argv": ["x"], "health": health, "ports": {"client": 7000}})
    assert client_address(instance, kind) == expected


def test_client_address_names_the_instance_and_the_kind_when_it_has_neither() -> None:
    with pytest.raises(NotFoundError, match=r"^instance 'db' has no TCP health check and no `client` port$"):
        client_address(ProcessInstance(name="db", argv=["x"]), TcpHealth)


def test_client_address_of_an_instance_on_another_host_is_its_client_port_on_that_host() -> None:
    instance = ProcessInstance.model_validate(
        {"name": "r", "argv": ["x"], "ports": {"client": 6379}, "host": {"address": "10.0.0.7", "user": "chaos"}}
    )
    assert client_address(instance, RedisHealth) == "10.0.0.7:6379"
