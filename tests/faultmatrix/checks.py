"""The fault matrix's direct looks at the stack — probed without the injectors' code — and how checks compose.

Every check re-reads the stack's description (state.json of the reference stack, whose restarts change
PIDs, or the matrix's stack file) and asks the thing itself over its own protocol: /proc for processes,
HTTP for services and the Toxiproxy API, RESP for Redis and Sentinel, the `srvr` four-letter word for
ZooKeeper, the Docker Engine API (docker SDK) for containers, and raw HTTP to the Kubernetes API for
pods, Deployments and nodes. A check raises AssertionError saying what it saw. The checks of each fault
domain live beside its scenarios, in tests/faultmatrix/kinds/<domain>.py; the protocol probes they share
are here.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from injectors.base import FaultPlan
from stackspec.targets import (
    LinkInstance,
    LinkTarget,
    ProcessInstance,
    ProcessTarget,
    RedisHealth,
    StackDescription,
    ZooKeeperHealth,
)

SENTINEL_MASTER = "trading"
FAST_S = 0.25  # a healthy loopback round trip is a few ms; a 2-core machine under test load gets slack


@dataclass(frozen=True)
class Live:
    """The stack as state.json describes it right now."""

    state: StackDescription

    @classmethod
    def read(cls, stack_dir: Path) -> Live:
        """The reference stack in `stack_dir`."""
        return cls.load(stack_dir / "state.json")

    @classmethod
    def load(cls, path: Path) -> Live:
        """A stack description file (JSON)."""
        return cls(StackDescription.model_validate_json(path.read_text()))

    def instances(self, target: str) -> list[ProcessInstance]:
        group = self.state.targets[target]
        assert isinstance(group, ProcessTarget), f"{target} is not a process target"
        return group.instances

    def instance(self, target: str, name: str) -> ProcessInstance:
        return next(i for i in self.instances(target) if i.name == name)

    def link(self, target: str, name: str) -> LinkInstance:
        group = self.state.targets[target]
        assert isinstance(group, LinkTarget), f"{target} is not a link target"
        return next(i for i in group.instances if i.name == name)

    def proxy(self, name: str) -> dict[str, Any]:
        """The proxy as the Toxiproxy API shows it (GET /proxies/NAME): enabled, listen, toxics."""
        assert self.state.toxiproxy is not None
        with urllib.request.urlopen(f"{self.state.toxiproxy.url}/proxies/{name}", timeout=2) as answer:
            body: dict[str, Any] = json.loads(answer.read())
        return body


Check = Callable[[Live, FaultPlan], None]


def both(*checks: Check) -> Check:
    def check(live: Live, plan: FaultPlan) -> None:
        for each in checks:
            each(live, plan)

    return check


# -- protocol probes ------------------------------------------------------------------------------


def proc_state(pid: int | None, start_time: int | None = None) -> str | None:
    """The /proc state letter of `pid` if it is alive (and still started at `start_time`), else None."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X") or (start_time is not None and int(fields[19]) != start_time):
        return None
    return fields[0]


def http_get(url: str, timeout_s: float = 1.0) -> float:
    """Seconds a GET took to answer 200; raises AssertionError otherwise."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            answer.read()
            status = answer.status
    except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, reset, cut short, garbled
        raise AssertionError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    assert status == 200, f"GET {url} answered {status}"
    return time.monotonic() - started


def address(instance: ProcessInstance) -> str:
    return f"127.0.0.1:{instance.ports['client']}"


def rcall(address: str, *command: str, timeout_s: float = 1.0) -> Any:
    """One Redis command on a fresh connection: explicit timeouts, no retries (they would hide a fault)."""
    host, _, port = address.rpartition(":")
    client = Redis(
        host=host,
        port=int(port),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def srvr_mode(address: str, timeout_s: float = 1.0) -> str | None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(b"srvr")
            text = b""
            while chunk := sock.recv(4096):
                text += chunk
    except OSError:
        return None
    modes = [line.split(":", 1)[1].strip() for line in text.decode(errors="replace").splitlines() if "Mode:" in line]
    return modes[0] if modes else None


def serving(instance: ProcessInstance) -> None:
    """The instance answers on its own protocol (HTTP health, Redis PING, ZooKeeper srvr)."""
    if "http" in instance.ports:
        http_get(f"http://127.0.0.1:{instance.ports['http']}/health")
    elif isinstance(instance.health, RedisHealth):
        assert rcall(address(instance), "PING") is True, f"{instance.name} does not answer PING"
    elif isinstance(instance.health, ZooKeeperHealth):
        assert srvr_mode(address(instance)) is not None, f"{instance.name} does not serve"
