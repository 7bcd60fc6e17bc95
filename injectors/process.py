"""Process faults on this host: `process.kill` (SIGKILL/SIGTERM, restarted on rollback) and `process.pause`.

A process is only ever signalled after its identity is proven: the PID must still carry the start
time recorded when we started it, so a recycled PID is never hit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from injectors import http
from injectors.base import FaultPlan, FaultSpec, Injector, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError, RollbackError, TargetNotFoundError
from injectors.health import problem, wait_healthy
from injectors.registry import register
from injectors.selection import Selection, select
from injectors.targets import ProcessInstance, ProcessTarget

_SETTLE_S = 0.1
_SETTLE_NO_HEALTH_S = 0.5


def start_time_of(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie PID, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def state_of(pid: int) -> str | None:
    """The one-letter /proc state (R, S, T, ...) of a PID, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def is_running(instance: ProcessInstance) -> bool:
    """True when the instance's recorded PID is alive and is still the same process."""
    if instance.pid is None:
        return False
    started = start_time_of(instance.pid)
    return started is not None and (instance.start_time is None or started == instance.start_time)


def reap(pid: int) -> None:
    """Collect the exit status if the PID is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_exit(pid: int, timeout_s: float) -> float | None:
    """Seconds until the PID exited (zombies count as exited), or None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        reap(pid)
        if start_time_of(pid) is None:
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def spawn(instance: ProcessInstance) -> ProcessInstance:
    """Start the instance's command detached from us (own session), logging to its log file."""
    env = {**os.environ, **instance.env}
    log_path = Path(instance.log) if instance.log else None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path or os.devnull, "ab") as log:
        proc = subprocess.Popen(
            instance.argv,
            cwd=instance.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = start_time_of(proc.pid)
    return instance.model_copy(update={"pid": proc.pid, "start_time": started})


def role_of(instance: ProcessInstance, timeout_s: float = 1.0) -> str | None:
    """The live role an instance reports at its role_url, or None when it does not answer."""
    if instance.role_url is None or not is_running(instance):
        return None
    try:
        status, body = http.get(instance.role_url, timeout_s)
        answer = json.loads(body) if status == 200 else None
    except (OSError, ValueError):
        return None
    role = answer.get("role") if isinstance(answer, dict) else None
    return str(role) if role is not None else None


def process_target(target: str, ctx: RunContext) -> ProcessTarget:
    group = ctx.stack.target(target)
    if not isinstance(group, ProcessTarget):
        raise TargetNotFoundError(f"target {target!r} is not a group of processes")
    return group


def current_instance(target: str, ref: TargetRef, ctx: RunContext) -> ProcessInstance:
    for instance in process_target(target, ctx).instances:
        if instance.name == ref.id:
            return instance
    raise TargetNotFoundError(f"instance {ref.id!r} is no longer in target {target!r}")


def _resolve_processes(target: str, selection: Selection | None, ctx: RunContext) -> list[TargetRef]:
    group = process_target(target, ctx)
    chosen = select(group.instances, selection, ctx.rng, name_of=lambda i: i.name, role_of=role_of)
    down = [i.name for i in chosen if not is_running(i)]
    if down:
        raise InjectionError(f"instance(s) {', '.join(down)} of {target!r} are not running")
    return [TargetRef(id=i.name, detail={"pid": i.pid, "start_time": i.start_time}) for i in chosen]


def _ensure_running(plan: FaultPlan, ref: TargetRef, ctx: RunContext, ready_timeout_s: float) -> dict[str, Any]:
    instance = current_instance(plan.target, ref, ctx)
    if is_running(instance):
        if instance.health is not None and problem(instance.health) is not None:
            wait_healthy(instance.health, ready_timeout_s)
        return {"restarted": False, "pid": instance.pid}
    restarted = spawn(instance)
    ctx.stack.replace_instance(plan.target, restarted)
    waited = wait_healthy(restarted.health, ready_timeout_s) if restarted.health else 0.0
    # Without a health check, a process that dies on start-up would still look alive for a moment.
    time.sleep(_SETTLE_S if restarted.health else _SETTLE_NO_HEALTH_S)
    if restarted.pid is not None:
        reap(restarted.pid)
    if not is_running(restarted):
        raise RollbackError(f"{ref.id} exited right after restart; see {restarted.log}")
    return {"restarted": True, "pid": restarted.pid, "ready_after_s": round(waited, 3)}


def verify_running(plan: FaultPlan, ref: TargetRef, ctx: RunContext) -> dict[str, Any]:
    instance = current_instance(plan.target, ref, ctx)
    if not is_running(instance) or instance.pid is None:
        raise FaultStillPresentError(f"{ref.id} is not running")
    if state_of(instance.pid) == "T":
        raise FaultStillPresentError(f"{ref.id} (pid {instance.pid}) is still stopped")
    if instance.health is not None and (reason := problem(instance.health)) is not None:
        raise FaultStillPresentError(f"{ref.id} is running but not healthy: {reason}")
    return {"pid": instance.pid}


def _identified_pid(plan: FaultPlan, ref: TargetRef, ctx: RunContext) -> int:
    instance = current_instance(plan.target, ref, ctx)
    if instance.pid != ref.detail.get("pid") or not is_running(instance) or instance.pid is None:
        raise InjectionError(
            f"{ref.id} (pid {ref.detail.get('pid')}) is no longer the process we resolved; nothing signalled"
        )
    return instance.pid


class ProcessKillSpec(FaultSpec):
    """Kill the process; rollback starts it again with its recorded command line."""

    signal: Literal["SIGKILL", "SIGTERM"] = Field(default="SIGKILL", description="Signal to send.")
    exit_timeout_s: float = Field(default=10.0, gt=0, description="How long to wait for the process to exit.")
    ready_timeout_s: float = Field(
        default=30.0, gt=0, description="How long the restarted process may take to pass its health check."
    )


@register
class ProcessKillInjector(Injector[ProcessKillSpec]):
    kind: ClassVar[str] = "process.kill"
    spec_type: ClassVar[type[FaultSpec]] = ProcessKillSpec
    summary: ClassVar[str] = "Kill processes of a target (SIGKILL or SIGTERM); rollback restarts them."

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        return _resolve_processes(target, select, ctx)

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        pid = _identified_pid(plan, ref, ctx)
        os.kill(pid, signal.Signals[self.spec.signal])
        exited_after = wait_exit(pid, self.spec.exit_timeout_s)
        if exited_after is None:
            raise InjectionError(
                f"{ref.id} (pid {pid}) still running {self.spec.exit_timeout_s}s after {self.spec.signal}"
            )
        ctx.stack.replace_instance(
            plan.target, current_instance(plan.target, ref, ctx).model_copy(update={"pid": None})
        )
        return {"pid": pid, "signal": self.spec.signal, "exited_after_s": round(exited_after, 3)}

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        return _ensure_running(plan, ref, ctx, self.spec.ready_timeout_s)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        return verify_running(plan, ref, ctx)


class ProcessPauseSpec(FaultSpec):
    """Freeze the process with SIGSTOP; rollback resumes it with SIGCONT."""

    ready_timeout_s: float = Field(
        default=30.0, gt=0, description="How long the resumed process may take to pass its health check."
    )


@register
class ProcessPauseInjector(Injector[ProcessPauseSpec]):
    kind: ClassVar[str] = "process.pause"
    spec_type: ClassVar[type[FaultSpec]] = ProcessPauseSpec
    summary: ClassVar[str] = "Freeze processes of a target (SIGSTOP); rollback resumes them (SIGCONT)."

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        return _resolve_processes(target, select, ctx)

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        pid = _identified_pid(plan, ref, ctx)
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 2.0
        while state_of(pid) != "T":
            if time.monotonic() > deadline:
                raise InjectionError(f"{ref.id} (pid {pid}) did not stop after SIGSTOP")
            time.sleep(0.005)
        return {"pid": pid, "signal": "SIGSTOP"}

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        instance = current_instance(plan.target, ref, ctx)
        if instance.pid is not None and is_running(instance):
            os.kill(instance.pid, signal.SIGCONT)
            if instance.health is not None:
                wait_healthy(instance.health, self.spec.ready_timeout_s)
            return {"pid": instance.pid, "signal": "SIGCONT"}
        # It died while frozen (or someone killed it): bring it back like a killed process.
        return _ensure_running(plan, ref, ctx, self.spec.ready_timeout_s)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        return verify_running(plan, ref, ctx)
