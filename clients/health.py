"""Health checks named in stack descriptions (HTTP, TCP, Redis PING, ZooKeeper `srvr`), settled roles, stability.

Plain sockets and urllib with explicit timeouts: a check must answer within its timeout even when
the thing it checks is frozen, and must not need a client library's retry logic.

Verification never trusts one good answer: `wait_stable` (`clients.poll`) polls until the same healthy
state has held for `STABLE_WINDOW_S`. And an election participant is settled only as leader or
follower (`role_problem`): a "candidate" that is healthy in every other way is not back in the election.
"""

from __future__ import annotations

import json
import socket

from clients import http
from clients.poll import STABLE_LOOKS, STABLE_POLL_S, STABLE_WINDOW_S, PollTimeout, poll_until, wait_stable
from clients.tcp import exchange, split_hostport
from clients.zk import ZK_SERVING_MODES, parse_srvr_mode
from stackspec.targets import HealthCheck, HttpHealth, RedisHealth, TcpHealth, ZooKeeperHealth

__all__ = [
    "SETTLED_ROLES",
    "STABLE_LOOKS",
    "STABLE_POLL_S",
    "STABLE_WINDOW_S",
    "UNSETTLED_ROLES",
    "PollTimeout",
    "exchange",
    "problem",
    "role_at",
    "role_problem",
    "split_hostport",
    "wait_healthy",
    "wait_stable",
]

# The roles of an election participant: only leader and follower are settled. A candidate (or a
# ZooKeeper-style "looking" peer) is not in its place yet; if it stays so, it is stuck.
SETTLED_ROLES = frozenset({"leader", "follower"})
UNSETTLED_ROLES = frozenset({"candidate", "looking", "electing"})


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
            if parse_srvr_mode(text) in ZK_SERVING_MODES:
                return None
            first = text.strip().splitlines()[0] if text.strip() else "nothing"
            return f"zookeeper at {check.zookeeper} is not serving ({first})"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    raise TypeError(f"unknown health check {check!r}")


def wait_healthy(check: HealthCheck, timeout_s: float, interval_s: float = 0.1) -> float:
    """Poll until healthy; returns seconds waited, raises PollTimeout (a TimeoutError) with the last reason."""

    def look() -> tuple[str | None, None]:
        return problem(check), None

    return poll_until(look, timeout_s, interval_s, "healthy")[1]


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
