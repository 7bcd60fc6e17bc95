"""`container.restart`: restart containers; rollback waits until they are running and healthy."""

from __future__ import annotations

import time
from typing import ClassVar

from pydantic import Field

from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.container.common import READY, ContainerFault, client_of, ensure_running
from injectors.errors import InjectionError
from injectors.registry import register


class ContainerRestartSpec(FaultSpec):
    """Restart the container (stop, then start); rollback makes sure it came back running and healthy."""

    stop_timeout_s: float = Field(default=10.0, ge=0, description="Grace period before the engine sends SIGKILL.")
    ready_timeout_s: float = READY


@register
class ContainerRestartInjector(ContainerFault[ContainerRestartSpec]):
    """Restart containers; rollback waits until they are running and healthy."""

    kind: ClassVar[str] = "container.restart"
    spec_type: ClassVar[type[FaultSpec]] = ContainerRestartSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        cid = str(ref.detail["container_id"])
        started = time.monotonic()
        with client_of(ref) as client:
            client.restart(cid, self.spec.stop_timeout_s)
            state = client.inspect(cid)
        if state.started_at == ref.detail["previous"]["started_at"]:
            raise InjectionError(f"{ref.id} was not restarted (start time unchanged: {state.started_at})")
        elapsed = round(time.monotonic() - started, 3)
        restarted = {"restarted_after_s": elapsed, "pid": state.pid, "status": state.status}
        return Outcome(detail={"container_id": cid, **restarted})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return ensure_running(ref, self.spec.ready_timeout_s)
