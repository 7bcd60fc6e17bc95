"""`container.stop`: stop containers gracefully (SIGKILL after a grace period); rollback starts them."""

from __future__ import annotations

import time
from typing import ClassVar

from pydantic import Field

from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.container.common import READY, ContainerFault, client_of, ensure_running
from injectors.errors import InjectionError
from injectors.registry import register


class ContainerStopSpec(FaultSpec):
    """Stop the container (its stop signal, then SIGKILL after the grace period); rollback starts it."""

    stop_timeout_s: float = Field(default=10.0, ge=0, description="Grace period before the engine sends SIGKILL.")
    ready_timeout_s: float = READY


@register
class ContainerStopInjector(ContainerFault[ContainerStopSpec]):
    """Stop containers gracefully (SIGKILL after a grace period); rollback starts them."""

    kind: ClassVar[str] = "container.stop"
    spec_type: ClassVar[type[FaultSpec]] = ContainerStopSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        cid = str(ref.detail["container_id"])
        started = time.monotonic()
        with client_of(ref) as client:
            client.stop(cid, self.spec.stop_timeout_s)
            state = client.inspect(cid)
        if state.running:
            raise InjectionError(f"{ref.id} still running after stop")
        elapsed = round(time.monotonic() - started, 3)
        return Outcome(detail={"container_id": cid, "stopped_after_s": elapsed, "exit_code": state.exit_code})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return ensure_running(ref, self.spec.ready_timeout_s)
