"""The `containers` profile: the matching engines run as containers on a Docker-API engine ($DOCKER_HOST).

The containers run the very same Python command lines as the processes of the other profiles, with the
host's binaries: a tiny image (mount points only, imported from a tarball, nothing pulled) plus read-only
binds of /usr, /etc, this repository and the Python installation, and a read-write bind of the stack
directory for the logs. They use the host network, so the services listen on loopback as before.
Every container carries the label `chaos.stack=<token>`; `down` removes only containers with this
stack's token, by id.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import sys
import tarfile
import time
import uuid
from pathlib import Path

from clients.container_engine import ContainerEngineError, ContainerNotFoundError, EngineClient, engine, engine_url
from clients.health import problem, role_at
from clients.poll import PollTimeout, poll_until
from stackspec.targets import ContainerInstance, ContainerTarget, HttpHealth, ProcessInstance, StackDescription

REPO_ROOT = Path(__file__).resolve().parent.parent
STACK_LABEL = "chaos.stack"
SERVICE_LABEL = "chaos.service"
ENGINE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
POLL_S = 0.05
_TOP_LEVEL = ("bin", "lib", "lib32", "lib64", "libx32", "sbin")
_MOUNT_POINTS = ("usr", "etc", "tmp", "proc", "sys", "dev", "run", "var", "root", "home")


class ContainerStackError(Exception):
    """A container of the stack could not be created or did not come up."""

    def __init__(self, component: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
        self.log_tail = log_tail


def _host_layout() -> tuple[list[tuple[str, str]], list[str]]:
    """(top-level symlinks to recreate, e.g. bin → usr/bin; top-level directories to bind read-only)."""
    links, dirs = [], []
    for name in _TOP_LEVEL:
        path = Path("/") / name
        if path.is_symlink():
            links.append((name, str(path.readlink())))
        elif path.is_dir():
            dirs.append(f"/{name}")
    return links, dirs


def hostroot_tar(links: list[tuple[str, str]]) -> bytes:
    """A root filesystem of empty mount points and the host's top-level symlinks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, target in links:
            entry = tarfile.TarInfo(name)
            entry.type, entry.linkname = tarfile.SYMTYPE, target
            tar.addfile(entry)
        for name in _MOUNT_POINTS:
            entry = tarfile.TarInfo(name)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(entry)
    return buffer.getvalue()


def binds(directory: Path) -> list[str]:
    """Host paths the services need, at the same paths: read-only, except the stack directory."""
    _, dirs = _host_layout()
    read_only = ["/usr", "/etc", *dirs, str(REPO_ROOT)]
    for prefix in (Path(sys.base_prefix), Path(sys.prefix)):
        if not any(prefix.is_relative_to(p) for p in read_only):
            read_only.append(str(prefix))
    # Parents before children, so the read-write stack directory is mounted over a read-only parent.
    mounts = [(p, "ro") for p in dict.fromkeys(read_only)] + [(str(directory), "rw")]
    mounts.sort(key=lambda m: len(Path(m[0]).parts))
    return [f"{path}:{path}:{mode}" for path, mode in mounts]


def ensure_image(client: EngineClient) -> str:
    """The host-root image for this host's layout; imported once (nothing is pulled)."""
    links, _ = _host_layout()
    digest = hashlib.sha256(json.dumps(links).encode()).hexdigest()[:12]
    image = f"localhost/chaos-hostroot-{digest}"
    if not client.image_exists(image):
        client.import_image(hostroot_tar(links), image, changes=[])
    return image


def start(directory: Path, services: list[ProcessInstance], service: str, summary: str) -> ContainerTarget:
    """Create and start one container per service instance; returns the stack's `container` target.

    On a failure the containers already created are removed again and ContainerStackError is raised.
    """
    url = engine_url(None)
    token = uuid.uuid4().hex[:10]
    labels = {STACK_LABEL: token, SERVICE_LABEL: service}
    created: list[str] = []
    members = []
    try:
        with engine(url, ENGINE_TIMEOUT_S) as client:
            image = ensure_image(client)
            mounts = binds(directory)
            for instance in services:
                log = instance.log or "/dev/null"
                command = ["/bin/sh", "-c", f"exec {shlex.join(instance.argv)} >>{shlex.quote(log)} 2>&1"]
                extra = {"chaos.health_url": instance.health.http} if isinstance(instance.health, HttpHealth) else {}
                extra |= {"chaos.role_url": instance.role_url} if instance.role_url else {}
                container_id = client.create(
                    image,
                    command,
                    name=f"trading-{token}-{instance.name}",
                    labels={**labels, **extra},
                    binds=mounts,
                    environment=instance.env,
                    working_dir=instance.cwd,
                )
                created.append(container_id)
                client.start(container_id)
                members.append(
                    ContainerInstance(
                        name=instance.name, container=container_id, health=instance.health, role_url=instance.role_url
                    )
                )
    except ContainerEngineError as exc:
        remove_ids(url, created)
        raise ContainerStackError(service, str(exc)) from exc
    return ContainerTarget(description=summary, engine_url=url, containers=members, labels=labels)


def remove_ids(url: str, ids: list[str]) -> None:
    if not ids:
        return
    with engine(url, ENGINE_TIMEOUT_S) as client:
        for container_id in ids:
            client.remove(container_id)


def _tail(instance: ProcessInstance | None) -> str:
    if instance is None or instance.log is None or not Path(instance.log).exists():
        return ""
    return "\n".join(Path(instance.log).read_text(errors="replace").splitlines()[-20:])


def wait_ready(target: ContainerTarget, services: list[ProcessInstance], deadline: float) -> None:
    """Every container running and its service healthy, before `deadline` (monotonic)."""
    logs = {s.name: s for s in services}
    pending = list(target.containers)
    with engine(target.engine_url, ENGINE_TIMEOUT_S) as client:

        def look() -> tuple[str | None, None]:
            for member in list(pending):
                state = client.inspect(member.container or member.name)
                # Only an ended container has failed: one still "created" or "restarting" is on its way.
                if state.status in ("exited", "dead"):
                    exited = f"container exited during start-up (exit code {state.exit_code})"
                    raise ContainerStackError(member.name, exited, _tail(logs.get(member.name)))
                if member.health is None or problem(member.health) is None:
                    pending.remove(member)
            if not pending:
                return None, None
            first = pending[0]
            return (problem(first.health) if first.health else None) or "unknown", None

        try:
            poll_until(look, max(0.0, deadline - time.monotonic()), POLL_S, "ready")
        except PollTimeout as exc:
            first = pending[0]
            raise ContainerStackError(
                first.name, f"not ready in time: {exc.last}", _tail(logs.get(first.name))
            ) from exc


def role(member: ContainerInstance, timeout_s: float = 1.0) -> str | None:
    """The role a member's service reports at its role URL, or None."""
    return role_at(member.role_url, timeout_s) if member.role_url is not None else None


def wait_leader(target: ContainerTarget, deadline: float) -> None:
    """One leader, the others queued as followers (settled, as `status` wants), before `deadline`."""

    def look() -> tuple[str | None, None]:
        roles = {m.name: role(m) for m in target.containers}
        values = list(roles.values())
        settled = values.count("leader") == 1 and values.count("follower") == len(values) - 1
        return (None if settled else f"{roles}"), None

    try:
        poll_until(look, max(0.0, deadline - time.monotonic()), POLL_S, "one leader")
    except PollTimeout as exc:
        raise ContainerStackError(target.description or "containers", f"no single leader in time: {exc.last}") from exc


def described(services: list[ProcessInstance], service: str, summary: str) -> ContainerTarget:
    """The target `start` returns, without starting anything: engine, ids and token are only known then."""
    members = [ContainerInstance(name=s.name, health=s.health, role_url=s.role_url) for s in services]
    return ContainerTarget(description=summary, containers=members, labels={SERVICE_LABEL: service})


def container_targets(state: StackDescription) -> dict[str, ContainerTarget]:
    return {name: t for name, t in state.targets.items() if isinstance(t, ContainerTarget)}


def remove_stack_containers(state: StackDescription) -> list[str]:
    """Remove the containers this stack started (listed by id and carrying its token); report each."""
    report = []
    for name, target in container_targets(state).items():
        token = target.labels.get(STACK_LABEL)
        if token is None:
            report.append(f"{name}: not started by the reference stack (no {STACK_LABEL} label); left alone")
            continue
        try:
            with engine(target.engine_url, ENGINE_TIMEOUT_S) as client:
                for member in target.containers:
                    ref = member.container or member.name
                    try:
                        state_now = client.inspect(ref)
                    except ContainerNotFoundError:
                        report.append(f"{member.name} (container) was already gone")
                        continue
                    if state_now.labels.get(STACK_LABEL) != token:
                        report.append(f"{member.name}: container {ref[:12]} is not this stack's; left alone")
                        continue
                    if state_now.paused:
                        client.unpause(state_now.id)  # a frozen service would never act on its stop signal
                    client.stop(state_now.id, STOP_TIMEOUT_S)
                    client.remove(state_now.id)
                    report.append(f"removed {member.name} (container {state_now.id[:12]})")
        except ContainerEngineError as exc:
            report.append(f"{name}: could not remove its containers: {exc}")
    return report


def status_rows(state: StackDescription) -> list[tuple[str, str, int | None, bool, str | None, str | None]]:
    """(target, instance, host pid, running, problem, role) for every container of the stack."""
    rows: list[tuple[str, str, int | None, bool, str | None, str | None]] = []
    for name, target in container_targets(state).items():
        try:
            with engine(target.engine_url, ENGINE_TIMEOUT_S) as client:
                for member in target.containers:
                    try:
                        current = client.inspect(member.container or member.name)
                    except ContainerNotFoundError:
                        rows.append((name, member.name, None, False, "container is gone", None))
                        continue
                    if not current.up:
                        rows.append((name, member.name, None, False, f"container {current.status}", None))
                        continue
                    reason = problem(member.health) if member.health else None
                    rows.append((name, member.name, current.pid, True, reason, role(member)))
        except ContainerEngineError as exc:
            rows += [(name, m.name, None, False, str(exc), None) for m in target.containers]
    return rows
