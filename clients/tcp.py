"""Plain TCP: host:port addresses, one request/answer exchange on a fresh socket, an instance's client address."""

from __future__ import annotations

import socket

from clients.errors import NotFoundError
from stackspec.targets import ProcessInstance, RedisHealth, TcpHealth, ZooKeeperHealth

AddressHealth = RedisHealth | ZooKeeperHealth | TcpHealth
# The field holding host:port in each health check that names one, and how messages name the kind.
_ADDRESS_OF: dict[type[AddressHealth], tuple[str, str]] = {
    RedisHealth: ("redis", "Redis"),
    ZooKeeperHealth: ("zookeeper", "ZooKeeper"),
    TcpHealth: ("tcp", "TCP"),
}


def split_hostport(address: str) -> tuple[str, int]:
    """'127.0.0.1:6379' → ('127.0.0.1', 6379)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host, int(port)


def exchange(address: str, payload: bytes, timeout_s: float, until: bytes | None = None) -> bytes:
    """Send `payload`, read until the peer closes (or `until` has arrived); every step bounded by `timeout_s`."""
    host, port = split_hostport(address)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(timeout_s)
        if payload:
            sock.sendall(payload)
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
            if until is not None and until in b"".join(chunks):
                break
        return b"".join(chunks)


def client_address(instance: ProcessInstance, health_type: type[AddressHealth]) -> str:
    """host:port clients reach an instance at: its health check of `health_type`, else its `client` port on
    its host (the `host` address it is reached at over SSH; loopback on this host); NotFoundError when it
    has neither."""
    field, label = _ADDRESS_OF[health_type]
    if isinstance(instance.health, health_type):
        return str(getattr(instance.health, field))
    if "client" in instance.ports:
        host = instance.host.address if instance.host is not None else "127.0.0.1"
        return f"{host}:{instance.ports['client']}"
    raise NotFoundError(f"instance {instance.name!r} has no {label} health check and no `client` port")
