"""One drill per system: locks keyed on what a stack description points at, not on the file that says it.

Two descriptions of the same system — a copy of a stack file, the reference stack's state.json and a
hand-written file naming the same processes — must not be drilled at once, and `chaos.py recover`
must not undo the live fault of a run in progress. So a run locks the *identities* its description
resolves to: every process (host and PID), every address a health check, port, link or endpoint
names (loopback spellings made one), every proxy, container and Kubernetes object. Each identity is
one flock'd file in a lock directory shared by every runs directory on this host; a second run that
shares any identity is refused, naming the holder. flock is released when its process dies, so a
killed runner never leaves a system locked — its faults are in the undo ledger, for `recover`.

Runners on different hosts are not coordinated by these locks: drill one system from one runner host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from engine.errors import ChaosError, ExitCode
from stackspec.targets import (
    ContainerTarget,
    HealthCheck,
    HttpHealth,
    KubernetesTarget,
    LinkTarget,
    ProcessTarget,
    StackDescription,
)

LOCK_DIR_ENV = "CHAOS_LOCK_DIR"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "", "ip6-localhost"}


class SystemBusyError(ChaosError):
    """Another live run holds a lock on part of the same system."""

    exit_code = ExitCode.CANNOT_RUN


def lock_dir() -> Path:
    """$CHAOS_LOCK_DIR, else /run/lock/trading-chaos where /run/lock is writable, else the temp dir's."""
    if configured := os.environ.get(LOCK_DIR_ENV):
        return Path(configured)
    run_lock = Path("/run/lock")
    if run_lock.is_dir() and os.access(run_lock, os.W_OK):
        return run_lock / "trading-chaos"
    return Path(tempfile.gettempdir()) / "trading-chaos-locks"


def _address(host: str, port: int | str, where: str) -> str:
    """`addr HOST:PORT`, with every loopback spelling of this host written as `local`."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK or name.startswith("127."):
        name = where
    return f"addr {name}:{port}"


def _url_address(url: str, where: str) -> str | None:
    """The address of an http(s) URL or a host:port, or None when it names none."""
    parsed = urllib.parse.urlsplit(url if "://" in url else f"tcp://{url}")
    try:
        port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    except ValueError:
        return None
    if parsed.hostname is None or port is None:
        return None
    return _address(parsed.hostname, port, where)


def _health_address(check: HealthCheck, where: str) -> str | None:
    if isinstance(check, HttpHealth):
        return _url_address(check.http, where)
    for field in ("tcp", "redis", "zookeeper"):
        if value := getattr(check, field, None):
            return _url_address(str(value), where)
    return None


def identities(description: StackDescription) -> list[str]:
    """Every identity the description resolves to, sorted (the order locks are taken in)."""
    keys: set[str] = set()
    for url in description.endpoints.values():
        keys.add(_url_address(url, "local") or f"endpoint {url}")
    if description.toxiproxy is not None:
        keys.add(f"toxiproxy {description.toxiproxy.url}")
    for group in description.targets.values():
        keys |= set(_target_identities(group, description))
    return sorted(k for k in keys if k)


def _target_identities(group: object, description: StackDescription) -> Iterator[str]:
    if isinstance(group, ProcessTarget):
        for instance in group.instances:
            where = "local" if instance.host is None else instance.host.address.lower()
            if instance.pid is not None:
                yield f"process {where} pid {instance.pid}"
            if instance.health is not None and (address := _health_address(instance.health, where)):
                yield address
            for port in instance.ports.values():
                yield _address("localhost" if instance.host is None else where, port, where)
    elif isinstance(group, LinkTarget):
        api = group.toxiproxy or description.toxiproxy
        for link in group.instances:
            yield f"proxy {api.url if api else '?'} {link.proxy}"
            for end in (link.listen, link.upstream):
                yield _url_address(end, "local") or f"endpoint {end}"
    elif isinstance(group, ContainerTarget):
        engine = group.engine_url or os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        for member in group.containers:
            yield f"container {engine} {member.container or member.name}"
        if group.labels:
            yield f"containers {engine} " + ",".join(f"{k}={v}" for k, v in sorted(group.labels.items()))
    elif isinstance(group, KubernetesTarget):
        cluster = group.api.api_url or f"{group.api.kubeconfig or '~/.kube/config'}#{group.api.context or ''}"
        which = group.deployment if group.resource == "deployment" else group.label_selector
        yield f"kubernetes {cluster} {group.namespace} {group.resource} {which}"


def _lock_path(directory: Path, key: str) -> Path:
    return directory / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"


class SystemLock:
    """Exclusive flocks on a set of identities, all or none; a context manager."""

    def __init__(self, keys: Iterable[str], holder: str, directory: Path | None = None) -> None:
        self.keys = sorted(set(keys))
        self.holder = holder
        self.directory = directory or lock_dir()
        self._held: list[IO[str]] = []

    def acquire(self) -> None:
        """Take every lock or none; raises SystemBusyError naming who holds the first busy one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.directory.chmod(0o1777)  # every user of this host shares the locks, as in /tmp
        for key in self.keys:
            handle = _lock_path(self.directory, key).open("a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().splitlines()[0:1] or ["another run"]
                handle.close()
                self.release()
                raise SystemBusyError(
                    f"{holder[0]} is drilling this system now ({key.split(' ', 1)[1]} is part of both); "
                    "one drill per system at a time: wait for it to end, or `chaos.py abort` it"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{self.holder}\n{key}\n")
            handle.flush()
            self._held.append(handle)

    def release(self) -> None:
        for handle in self._held:
            with contextlib.suppress(OSError):
                handle.seek(0)
                handle.truncate()
                handle.close()
        self._held.clear()

    def __enter__(self) -> SystemLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def busy(keys: Iterable[str], directory: Path | None = None) -> str | None:
    """Who holds a lock on any of `keys` right now (a live run), or None when all are free."""
    try:
        with SystemLock(keys, "probe", directory):
            return None
    except SystemBusyError as exc:
        return str(exc)
