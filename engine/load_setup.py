"""The load generator's parts that start no process: the driver protocol, the spread, the metrics stream.

LoadDriver is what the runner needs from a load generator; Distribution, how a load is spread over
Locust processes; plugin_path, where our metrics plugin is; JsonLinesTail, the reader of the
JSON-Lines metrics stream that plugin writes. engine.load runs Locust with them and re-exports them.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.errors import LoadError
from engine.journal import LoadRecord
from engine.model import LoadSpec


class LoadDriver(Protocol):
    """What the runner needs from a load generator (Locust here, a fake in tests)."""

    record: LoadRecord

    def check_target(self) -> str | None:
        """None when the load's target answers, else why not (preflight; starts nothing)."""
        ...

    def start(self) -> None: ...

    def wait_started(self, timeout_s: float) -> float:
        """Block until the load runs; returns its start as epoch seconds."""
        ...

    def poll(self) -> list[dict[str, Any]]:
        """New metric records since the last call."""
        ...

    def running(self) -> bool: ...

    def wait_finished(self, timeout_s: float) -> bool:
        """Wait for the load to end on its own; True if it did."""
        ...

    def stop(self) -> None:
        """Stop the load now (idempotent)."""
        ...


def plugin_path() -> Path:
    spec = importlib.util.find_spec("loadgen")
    if spec is None or not spec.submodule_search_locations:
        raise LoadError("the Locust-side package 'loadgen' is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "metrics_plugin.py"


class JsonLinesTail:
    """Reads complete lines appended to a file since the last read; a partial last line waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.bad_lines = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(value, dict):
                records.append(value)
        return records


@dataclass(frozen=True)
class Distribution:
    """How the load is spread over Locust processes: one process, or a master with workers (see LoadSpec)."""

    workers: int = 1
    remote_workers: int = 0
    master_host: str | None = None
    master_bind: str | None = None
    master_port: int | None = None
    join_timeout_s: float = 60.0

    @classmethod
    def from_spec(cls, spec: LoadSpec) -> Distribution:
        return cls(
            workers=spec.workers,
            remote_workers=spec.remote_workers,
            master_host=spec.master_host,
            master_bind=spec.master_bind,
            master_port=spec.master_port,
            join_timeout_s=spec.join_timeout,
        )

    @property
    def distributed(self) -> bool:
        """True when a master runs: several local workers, or workers on other machines to wait for."""
        return self.workers > 1 or self.remote_workers > 0

    def bind_host(self) -> str:
        """The IPv4 address the master listens on: loopback, unless master_host mode names another."""
        if self.master_bind is not None:
            return self.master_bind
        if self.master_host is None:
            return "127.0.0.1"
        try:
            return str(ipaddress.IPv4Address(self.master_host))
        except ValueError:
            pass
        try:
            return str(socket.getaddrinfo(self.master_host, None, socket.AF_INET)[0][4][0])
        except (OSError, IndexError) as exc:
            raise LoadError(
                f"master_host {self.master_host!r} does not resolve to an IPv4 address ({exc}); "
                "set load.master_bind to the address of this machine the master should listen on"
            ) from exc


def local_address(bind: str) -> str:
    """Where workers on this machine reach a master listening on `bind` (all interfaces: loopback)."""
    return "127.0.0.1" if ipaddress.IPv4Address(bind).is_unspecified else bind
