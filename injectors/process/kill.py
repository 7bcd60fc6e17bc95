"""`process.kill`: kill processes of a target (SIGKILL or SIGTERM); rollback restarts them."""

from __future__ import annotations

import signal
from typing import ClassVar, Literal

from pydantic import Field

from clients.procs import wait_exit_on
from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import InjectionError
from injectors.process.common import (
    Detail,
    ProcessFault,
    current_instance,
    ensure_running,
    identified_pid,
    verify_running,
    where,
)
from injectors.registry import register


class ProcessKillSpec(FaultSpec):
    """Kill the process; rollback starts it again with its recorded command line."""

    signal: Literal["SIGKILL", "SIGTERM"] = Field(default="SIGKILL", description="Signal to send.")
    exit_timeout_s: float = Field(default=10.0, gt=0, description="How long to wait for the process to exit.")
    ready_timeout_s: float = Field(
        default=30.0, gt=0, description="How long the restarted process may take to pass its health check."
    )


@register
class ProcessKillInjector(ProcessFault[ProcessKillSpec]):
    """Kill processes of a target (SIGKILL or SIGTERM); rollback restarts them."""

    kind: ClassVar[str] = "process.kill"
    spec_type: ClassVar[type[FaultSpec]] = ProcessKillSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        host, pid = identified_pid(plan, ref, ctx, self.hosts)
        host.signal(pid, signal.Signals[self.spec.signal])
        exited_after = wait_exit_on(host, pid, self.spec.exit_timeout_s)
        if exited_after is None:
            raise InjectionError(
                f"{ref.id} (pid {pid}) still running {self.spec.exit_timeout_s}s after {self.spec.signal}"
            )
        instance = current_instance(plan.target, ref, ctx)
        ctx.stack.replace_instance(plan.target, instance.model_copy(update={"pid": None}))
        exited: Detail = {"pid": pid, "signal": self.spec.signal, "exited_after_s": round(exited_after, 3)}
        return Outcome(detail={**exited, **where(instance)})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return Outcome(detail=ensure_running(plan, ref, ctx, self.spec.ready_timeout_s, self.hosts))

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        # The same bound as for the rollback's wait for health: a process that became healthy may need it again.
        return Outcome(detail=verify_running(plan, ref, ctx, self.hosts, timeout_s=self.spec.ready_timeout_s))
