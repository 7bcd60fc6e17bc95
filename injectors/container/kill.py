"""`container.kill`: kill containers (a signal to the main process); rollback starts them again."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from clients.poll import PollTimeout
from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.container.common import READY, ContainerFault, client_of, ensure_running, wait_for
from injectors.errors import InjectionError
from injectors.registry import register


class ContainerKillSpec(FaultSpec):
    """Send a signal to the container's main process; rollback starts the container again."""

    signal: Literal["SIGKILL", "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP"] = Field(
        default="SIGKILL", description="Signal to send (a main process that ignores it leaves the container up)."
    )
    exit_timeout_s: float = Field(default=10.0, gt=0, description="How long to wait for the container to exit.")
    ready_timeout_s: float = READY


@register
class ContainerKillInjector(ContainerFault[ContainerKillSpec]):
    """Kill containers (a signal to the main process); rollback starts them again."""

    kind: ClassVar[str] = "container.kill"
    spec_type: ClassVar[type[FaultSpec]] = ContainerKillSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        cid = str(ref.detail["container_id"])
        with client_of(ref) as client:
            client.kill(cid, self.spec.signal)
            try:
                waited = wait_for(
                    lambda: None if not client.inspect(cid).running else "still running",
                    self.spec.exit_timeout_s,
                    f"exited on {self.spec.signal}",
                )
            except PollTimeout as exc:
                raise InjectionError(f"{ref.id}: {exc}") from exc
            state = client.inspect(cid)
        exited = {"signal": self.spec.signal, "exited_after_s": round(waited, 3), "exit_code": state.exit_code}
        return Outcome(detail={"container_id": cid, **exited})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return ensure_running(ref, self.spec.ready_timeout_s)
