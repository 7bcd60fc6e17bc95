"""Health checks named in stack descriptions: HTTP, TCP, Redis PING and ZooKeeper `srvr`.

Plain sockets and urllib with explicit timeouts: a check must answer within its timeout even when
the thing it checks is frozen, and must not need a client library's retry logic.
"""

from __future__ import annotations

import socket
import time

from injectors import http
from injectors.targets import HealthCheck, HttpHealth, RedisHealth, TcpHealth, ZooKeeperHealth

_ZK_SERVING_MODES = ("standalone", "leader", "follower", "observer")


def split_hostport(address: str) -> tuple[str, int]:
    """'127.0.0.1:6379' → ('127.0.0.1', 6379)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host, int(port)


def exchange(address: str, payload: bytes, timeout_s: float, until: bytes | None = None) -> bytes:
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


def problem(check: HealthCheck) -> str | None:
    """None when healthy, else a one-line reason."""
    try:
        if isinstance(check, HttpHealth):
            status, _ = http.get(check.http, check.timeout_s)
            return None if status == check.status else f"GET {check.http} answered {status}"
        if isinstance(check, TcpHealth):
            host, port = split_hostport(check.tcp)
            with socket.create_connection((host, port), timeout=check.timeout_s):
                return None
        if isinstance(check, RedisHealth):
            reply = exchange(check.redis, b"PING\r\n", check.timeout_s, until=b"\r\n")
            return None if reply.startswith(b"+PONG") else f"redis at {check.redis} answered {reply[:60]!r}"
        if isinstance(check, ZooKeeperHealth):
            text = exchange(check.zookeeper, b"srvr", check.timeout_s).decode(errors="replace")
            for line in text.splitlines():
                if line.startswith("Mode:") and line.split(":", 1)[1].strip() in _ZK_SERVING_MODES:
                    return None
            first = text.strip().splitlines()[0] if text.strip() else "nothing"
            return f"zookeeper at {check.zookeeper} is not serving ({first})"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    raise TypeError(f"unknown health check {check!r}")


def wait_healthy(check: HealthCheck, timeout_s: float, interval_s: float = 0.1) -> float:
    """Poll until healthy; returns seconds waited, raises TimeoutError with the last reason."""
    started = time.monotonic()
    while True:
        reason = problem(check)
        if reason is None:
            return time.monotonic() - started
        if time.monotonic() - started >= timeout_s:
            raise TimeoutError(f"not healthy after {timeout_s:.1f}s: {reason}")
        time.sleep(interval_s)
