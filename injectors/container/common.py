"""What the container kinds share: finding containers, bringing them back running and healthy, verifying it.

Targets are `container` groups of the stack description: containers listed by name or id, or found by
a label selector. Every target reference carries the container id and the engine URL, so a rollback
works from the fault plan alone in a new process. Rollback unpauses, starts or reconnects, and then
waits until the container is running, not paused, healthy by its own health check (if it has one) and
by the instance's health check (a trading service's HTTP health URL); verification checks the same.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field, JsonValue, TypeAdapter

from clients.container_engine import ContainerNotFoundError, ContainerState, EngineClient, engine, engine_url
from clients.health import problem, role_at
from clients.poll import PollTimeout, poll_until
from injectors.base import FaultPlan, Injector, Outcome, RunContext, SpecT, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError, RollbackError, TargetNotFoundError
from injectors.selection import Selection, select
from stackspec.targets import ContainerInstance, ContainerTarget, HealthCheck, HttpHealth

HEALTH_URL_LABEL = "chaos.health_url"
ROLE_URL_LABEL = "chaos.role_url"
POLL_S = 0.02
READY_POLL_S = 0.2
_HEALTH: TypeAdapter[HealthCheck] = TypeAdapter(HealthCheck)
READY = Field(default=30.0, gt=0, description="How long the container may take to be running and healthy again.")


@dataclass(frozen=True)
class Member:
    instance: ContainerInstance
    state: ContainerState


def container_group(target: str, ctx: RunContext) -> ContainerTarget:
    group = ctx.stack.target(target)
    if not isinstance(group, ContainerTarget):
        raise TargetNotFoundError(f"target {target!r} is a {group.kind} target, not a group of containers")
    return group


def members(group: ContainerTarget, client: EngineClient) -> list[Member]:
    """The listed containers, then those the label selector finds (each container once)."""
    found = [Member(i, client.inspect(i.container or i.name)) for i in group.containers]
    if group.labels:
        seen = {m.state.id for m in found}
        for state in client.find(group.labels):
            if state.id in seen:
                continue
            health_url = state.labels.get(HEALTH_URL_LABEL)
            instance = ContainerInstance(
                name=state.name,
                container=state.id,
                health=HttpHealth(http=health_url) if health_url else None,
                role_url=state.labels.get(ROLE_URL_LABEL),
            )
            found.append(Member(instance, state))
        if not found:
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(group.labels.items()))
            raise TargetNotFoundError(f"no container on the engine at {client.url} has the labels {wanted}")
    return found


def role_of(member: Member, timeout_s: float = 1.0) -> str | None:
    """The live role a running container's service reports at its role URL, or None."""
    if member.instance.role_url is None or not member.state.up:
        return None
    return role_at(member.instance.role_url, timeout_s)


def resolve_containers(target: str, selection: Selection | None, ctx: RunContext) -> list[TargetRef]:
    """Pick running containers of the target; each reference records what a rollback needs."""
    group = container_group(target, ctx)
    url = engine_url(group.engine_url)
    with engine(url, group.timeout_s) as client:
        chosen = select(members(group, client), selection, ctx.rng, name_of=lambda m: m.instance.name, role_of=role_of)
    down = [f"{m.instance.name} ({m.state.status})" for m in chosen if not m.state.up]
    if down:
        raise InjectionError(f"container(s) {', '.join(down)} of {target!r} are not running")
    return [
        TargetRef(
            id=m.instance.name,
            detail={
                "container_id": m.state.id,
                "container": m.state.name,
                "engine_url": url,
                "timeout_s": group.timeout_s,
                "health": m.instance.health.model_dump() if m.instance.health else None,
                "previous": {"status": m.state.status, "started_at": m.state.started_at, "pid": m.state.pid},
                "networks": list(m.state.networks),
                "network_mode": m.state.network_mode,
            },
        )
        for m in chosen
    ]


def client_of(ref: TargetRef) -> AbstractContextManager[EngineClient]:
    """The engine of a reference, from the reference alone (no stack description needed)."""
    return engine(str(ref.detail["engine_url"]), float(ref.detail.get("timeout_s", 10.0)))


def _health(ref: TargetRef) -> HealthCheck | None:
    raw = ref.detail.get("health")
    return _HEALTH.validate_python(raw) if raw else None


def not_ready(client: EngineClient, ref: TargetRef) -> str | None:
    """None when the container is running, not paused and healthy; else why not."""
    cid = str(ref.detail["container_id"])
    state = client.inspect(cid)
    if state.paused:
        return "is paused"
    if not state.running:
        return f"is not running (status {state.status}, exit code {state.exit_code})"
    health = state.health
    if health is not None:
        # Fresh, not the last recorded result: podman here has no timer that runs health checks.
        health = client.run_healthcheck(cid) or health
    if health is not None and health != "healthy":
        return f"reports health {health!r}"
    check = _health(ref)
    if check is not None and (reason := problem(check)) is not None:
        return f"is running but not healthy: {reason}"
    return None


def wait_for(condition: Callable[[], str | None], timeout_s: float, what: str, interval_s: float = POLL_S) -> float:
    """Poll `condition()` (None = done, else a reason) until done; returns seconds waited, or raises PollTimeout."""
    _, waited = poll_until(lambda: (condition(), None), timeout_s, interval_s, what)
    return waited


def ensure_running(ref: TargetRef, ready_timeout_s: float) -> Outcome:
    """Unpause or start the container as needed, then wait until it is ready. Idempotent."""
    cid = str(ref.detail["container_id"])
    with client_of(ref) as client:
        try:
            state = client.inspect(cid)
        except ContainerNotFoundError as exc:
            raise RollbackError(f"{ref.id}: container {cid[:12]} no longer exists; it cannot be started") from exc
        action = "none"
        if state.paused:
            client.unpause(cid)
            action = "unpaused"
        elif not state.running:
            client.start(cid)
            action = "started"
        try:
            waited = wait_for(lambda: not_ready(client, ref), ready_timeout_s, "ready", READY_POLL_S)
        except PollTimeout as exc:
            raise RollbackError(f"{ref.id}: {exc}") from exc
        return Outcome(detail={"container_id": cid, "action": action, "ready_after_s": round(waited, 3)})


def verify_ready(ref: TargetRef) -> dict[str, JsonValue]:
    """The container is running, not paused and healthy (one look); else FaultStillPresentError."""
    with client_of(ref) as client:
        reason = not_ready(client, ref)
        if reason is not None:
            raise FaultStillPresentError(f"{ref.id} (container {str(ref.detail['container_id'])[:12]}) {reason}")
        state = client.inspect(str(ref.detail["container_id"]))
    return {"container_id": state.id, "status": state.status, "pid": state.pid}


class ContainerFault(Injector[SpecT]):
    """Shared by every container kind: resolution and verification (rollback is each kind's)."""

    target_kinds: ClassVar[tuple[str, ...]] = ("container",)
    max_parallel: ClassVar[int] = 8  # one engine client per target: the calls are independent

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        return resolve_containers(target, select, ctx)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return Outcome(detail=verify_ready(ref))
