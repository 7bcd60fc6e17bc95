"""`process.pause`: freeze processes of a target (SIGSTOP); rollback resumes them (SIGCONT)."""

from __future__ import annotations

import signal
from typing import ClassVar

from pydantic import Field

from clients.health import wait_healthy
from clients.poll import PollTimeout, poll_until
from clients.procs import same_process
from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import InjectionError
from injectors.process.common import (
    ProcessFault,
    current_instance,
    ensure_running,
    identified_pid,
    verify_running,
    where,
)
from injectors.registry import register

STOP_TIMEOUT_S = 2.0


def _stopped(stat: tuple[str, int] | None) -> tuple[str | None, None]:
    """No problem once the kernel shows the process in state T (stopped)."""
    if stat is None:
        return "gone (no such PID)", None
    return (None if stat[0] == "T" else f"in state {stat[0]}"), None


class ProcessPauseSpec(FaultSpec):
    """Freeze the process with SIGSTOP; rollback resumes it with SIGCONT."""

    ready_timeout_s: float = Field(
        default=30.0, gt=0, description="How long the resumed process may take to pass its health check."
    )


@register
class ProcessPauseInjector(ProcessFault[ProcessPauseSpec]):
    """Freeze processes of a target (SIGSTOP); rollback resumes them (SIGCONT)."""

    kind: ClassVar[str] = "process.pause"
    spec_type: ClassVar[type[FaultSpec]] = ProcessPauseSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        host, pid = identified_pid(plan, ref, ctx, self.hosts)
        host.signal(pid, signal.SIGSTOP)
        try:
            poll_until(lambda: _stopped(host.stat(pid)), STOP_TIMEOUT_S, host.poll_s / 2, "stopped by SIGSTOP")
        except PollTimeout as exc:
            raise InjectionError(f"{ref.id} (pid {pid}): {exc}") from exc
        return Outcome(detail={"pid": pid, "signal": "SIGSTOP", **where(current_instance(plan.target, ref, ctx))})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        instance = current_instance(plan.target, ref, ctx)
        host = self.hosts.of(instance)
        if instance.pid is not None and same_process(host, instance):
            host.signal(instance.pid, signal.SIGCONT)
            if instance.health is not None:
                wait_healthy(instance.health, self.spec.ready_timeout_s)
            return Outcome(detail={"pid": instance.pid, "signal": "SIGCONT", **where(instance)})
        # It died while frozen (or someone killed it): bring it back like a killed process.
        return Outcome(detail=ensure_running(plan, ref, ctx, self.spec.ready_timeout_s, self.hosts))

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return Outcome(detail=verify_running(plan, ref, ctx, self.hosts, timeout_s=self.spec.ready_timeout_s))
