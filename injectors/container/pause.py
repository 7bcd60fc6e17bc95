"""`container.pause`: freeze containers (the engine's pause); rollback unpauses them."""

from __future__ import annotations

from typing import ClassVar

from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.container.common import READY, ContainerFault, client_of, ensure_running
from injectors.errors import InjectionError
from injectors.registry import register


class ContainerPauseSpec(FaultSpec):
    """Freeze every process of the container (cgroup freezer); rollback unpauses it."""

    ready_timeout_s: float = READY


@register
class ContainerPauseInjector(ContainerFault[ContainerPauseSpec]):
    """Freeze containers (the engine's pause); rollback unpauses them."""

    kind: ClassVar[str] = "container.pause"
    spec_type: ClassVar[type[FaultSpec]] = ContainerPauseSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        cid = str(ref.detail["container_id"])
        with client_of(ref) as client:
            client.pause(cid)
            state = client.inspect(cid)
        if not state.paused:
            raise InjectionError(f"{ref.id} is {state.status} after pause, not paused")
        return Outcome(detail={"container_id": cid, "status": state.status})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return ensure_running(ref, self.spec.ready_timeout_s)
