"""Health checks named in stack descriptions (HTTP, TCP, Redis PING, ZooKeeper `srvr`), settled roles, stability.

Plain sockets and urllib with explicit timeouts: a check must answer within its timeout even when
the thing it checks is frozen, and must not need a client library's retry logic.

Verification never trusts one good answer: `wait_stable` polls until the same healthy state has
held for `STABLE_WINDOW_S`. A resumed process can answer 200 and, milliseconds later, notice that
its ZooKeeper session expired; a Redis set can look whole for a moment while Sentinel is still
failing over. And an election participant is settled only as leader or follower (`role_problem`):
a "candidate" that is healthy in every other way is not back in the election.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from clients import http
from stackspec.targets import HealthCheck, HttpHealth, RedisHealth, TcpHealth, ZooKeeperHealth

_ZK_SERVING_MODES = ("standalone", "leader", "follower", "observer")

# A verified state must hold, unchanged and healthy, for this long, seen at least STABLE_LOOKS times in
# a row (one look every STABLE_POLL_S). Long enough to see a resumed client drop its dead ZooKeeper
# connection and learn that its session expired (milliseconds to a few hundred here, even under load),
# short enough to add about a second to each verification.
STABLE_WINDOW_S = 1.0
STABLE_POLL_S = 0.2
STABLE_LOOKS = 4
# The roles of an election participant: only leader and follower are settled. A candidate (or a
# ZooKeeper-style "looking" peer) is not in its place yet; if it stays so, it is stuck.
SETTLED_ROLES = frozenset({"leader", "follower"})
UNSETTLED_ROLES = frozenset({"candidate", "looking", "electing"})

T = TypeVar("T")


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


def _said(body: bytes) -> str:
    """': <reason>' when a health answer is JSON with a `reason` (or `error`), so messages say why; else ''."""
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    reason = answer.get("reason") or answer.get("error") if isinstance(answer, dict) else None
    return f": {str(reason)[:200]}" if reason else ""


def problem(check: HealthCheck) -> str | None:
    """None when healthy, else a one-line reason."""
    try:
        if isinstance(check, HttpHealth):
            status, body = http.get(check.http, check.timeout_s)
            return None if status == check.status else f"GET {check.http} answered {status}{_said(body)}"
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


def role_at(url: str, timeout_s: float = 1.0) -> str | None:
    """The role a service reports at its role URL (JSON {"role": ...}), or None when it does not say."""
    try:
        status, body = http.get(url, timeout_s)
        answer = json.loads(body) if status == 200 else None
    except (OSError, ValueError):
        return None
    role = answer.get("role") if isinstance(answer, dict) else None
    return str(role) if role is not None else None


def role_problem(role: str | None) -> str | None:
    """None for a settled role (leader, follower) or one outside any election (primary, replica ...), else why not."""
    if role is None:
        return "its role URL does not answer"
    if role in UNSETTLED_ROLES:
        return f"role {role}: an election participant that is neither leader nor follower"
    return None


def wait_stable(
    observe: Callable[[], tuple[str | None, T]],
    timeout_s: float,
    *,
    window_s: float = STABLE_WINDOW_S,
    poll_s: float = STABLE_POLL_S,
    looks: int = STABLE_LOOKS,
) -> tuple[T, float]:
    """Poll `observe` (a problem or None, and the state seen) until no problem and the same state for `window_s`.

    Returns that state and the seconds waited; raises TimeoutError with the last problem (or the
    state changes) once `timeout_s` has passed without such a window. `observe` may raise to fail at
    once (e.g. the process is gone: waiting cannot help).
    """
    started = time.monotonic()
    since: float | None = None
    seen = 0
    state: T | None = None
    last = "never observed"
    while True:
        now = time.monotonic()
        reason, current = observe()
        if reason is not None:
            since, seen, last = None, 0, reason
        elif since is not None and current == state:
            seen += 1
        else:
            if since is not None:
                last = f"changed from {state!r} to {current!r} within {window_s:g}s"
            since, seen, state = now, 1, current
        if since is not None and seen >= looks and now - since >= window_s:
            return current, round(now - started, 3)
        if now - started >= timeout_s:
            if since is not None:
                earlier = f" (before that: {last})" if seen and last != "never observed" else ""
                last = f"good for only {now - since:.1f}s{earlier}"
            raise TimeoutError(f"not stable for {window_s:g}s within {timeout_s:g}s: {last}")
        time.sleep(poll_s)
