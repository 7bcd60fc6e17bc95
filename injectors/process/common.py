"""What the process kinds share (and the Redis and ZooKeeper kinds reuse): finding, restarting, verifying.

A process is only ever signalled after its identity is proven: the PID must still carry the start
time recorded when we started it, so a recycled PID is never hit. Where the process lives is a
`ProcessHost`: this host (/proc, os.kill) or, for an instance with a `host`, a host reached over SSH
(the same /proc reads and `kill` run there through `clients.ssh`). The fault logic is written
once against that small interface.
"""

from __future__ import annotations

import ipaddress
import time
from contextlib import AbstractContextManager

from pydantic import JsonValue

from clients.health import problem, role_at, role_problem, wait_healthy, wait_stable
from clients.procs import (
    MatchError,
    ProcessHost,
    ProcessHosts,
    alive_start,
    found_by_rule,
    is_running,
    role_of,
    same_process,
    using_hosts,
)
from injectors.base import FaultPlan, Injector, RunContext, SpecT, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError, RollbackError, TargetNotFoundError
from injectors.process._restart import bring_back, check_program
from injectors.process._restart import managed as managed
from injectors.process._restart import run_command as run_command
from injectors.selection import Selection, select
from stackspec.targets import ProcessInstance, ProcessTarget

Detail = dict[str, JsonValue]
_SETTLE_S = 0.1
_SETTLE_NO_HEALTH_S = 0.5


def process_target(target: str, ctx: RunContext) -> ProcessTarget:
    group = ctx.stack.target(target)
    if not isinstance(group, ProcessTarget):
        raise TargetNotFoundError(f"target {target!r} is not a group of processes")
    return group


def current_instance(target: str, ref: TargetRef, ctx: RunContext) -> ProcessInstance:
    for instance in process_target(target, ctx).instances:
        if instance.name == ref.id:
            if instance.match is not None and instance.pid is None and isinstance(ref.detail.get("pid"), int):
                # Found by its rule when the fault was planned, and that record is not in this stack's live
                # state (a recover in a new process): the plan names the process, never a guess.
                return instance.model_copy(
                    update={"pid": ref.detail["pid"], "start_time": ref.detail.get("start_time")}
                )
            return instance
    raise TargetNotFoundError(f"instance {ref.id!r} is no longer in target {target!r}")


def where(instance: ProcessInstance) -> Detail:
    """Journal detail naming the remote host (never its key or passphrase); nothing for this host."""
    return {"host": instance.host.label} if instance.host is not None else {}


def resolve_processes(
    target: str, selection: Selection | None, ctx: RunContext, hosts: ProcessHosts
) -> list[TargetRef]:
    instances, unmatched = found_by_rules(target, ctx, hosts)
    chosen = select(instances, selection, ctx.rng, name_of=lambda i: i.name, role_of=lambda i: role_of(i, hosts=hosts))
    problems = [unmatched[i.name] for i in chosen if i.name in unmatched]
    if problems:
        raise TargetNotFoundError("; ".join(problems))
    down = [i.name for i in chosen if not is_running(i, hosts)]
    if down:
        raise InjectionError(f"instance(s) {', '.join(down)} of {target!r} are not running")
    for instance in chosen:
        check_program(hosts.of(instance), target, instance)  # a restart that cannot work: refuse before any fault
    return [TargetRef(id=i.name, detail={"pid": i.pid, "start_time": i.start_time, **where(i)}) for i in chosen]


def found_by_rules(target: str, ctx: RunContext, hosts: ProcessHosts) -> tuple[list[ProcessInstance], dict[str, str]]:
    """The target's instances, those with a `match` rule found on their hosts now (and recorded in the live
    stack, so the rollback knows the PID); and, by name, why a rule found none or several."""
    instances, unmatched = [], {}
    for instance in process_target(target, ctx).instances:
        try:
            found = found_by_rule(hosts.of(instance), instance)
        except MatchError as exc:
            unmatched[instance.name] = str(exc)
            found = instance
        if found is not instance:
            ctx.stack.replace_instance(target, found)
        instances.append(found)
    return instances, unmatched


def refuse_loopback(target: str, instance: ProcessInstance, address: str) -> None:
    """A node on another host whose address is loopback would be this runner's own loopback: refused.

    Only when the SSH host itself is not a loopback address (a test, or a tunnel, may reach "another host"
    at 127.0.0.1, and then loopback is where the node really answers).
    """
    if instance.host is None or is_loopback(instance.host.address):
        return
    node = address.rpartition(":")[0].strip("[]")
    if is_loopback(node):
        raise TargetNotFoundError(
            f"target {target!r}, instance {instance.name} runs on {instance.host.label} but its address {address} "
            f"is loopback, which from here is this runner's own host; give its health check (or `host.address` "
            f"with `ports.client`) the address it serves on at {instance.host.address}"
        )


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, or the name localhost."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ensure_running(
    plan: FaultPlan, ref: TargetRef, ctx: RunContext, ready_timeout_s: float, hosts: ProcessHosts
) -> Detail:
    """The planned process runs again: left alone when it does, adopted when another PID serves, else restarted."""
    instance = current_instance(plan.target, ref, ctx)
    host = hosts.of(instance)
    if same_process(host, instance):
        if instance.health is not None and problem(instance.health) is not None:
            wait_healthy(instance.health, ready_timeout_s)
        return {"restarted": False, "pid": instance.pid, **where(instance)}
    how: Detail = {"restart_by": instance.restart.by} if instance.restart is not None else {}
    if managed(instance) is not None:
        restarted, how = bring_back(host, instance, (ref.detail.get("pid"), ref.detail.get("start_time")))
    elif instance.health is not None and problem(instance.health) is None:
        return _adopt(plan, ref, ctx, host, instance)
    else:
        restarted = host.spawn(instance)
    ctx.stack.replace_instance(plan.target, restarted)
    waited = wait_healthy(restarted.health, ready_timeout_s) if restarted.health else 0.0
    # Without a health check, a process that dies on start-up would still look alive for a moment.
    time.sleep(_SETTLE_S if restarted.health else _SETTLE_NO_HEALTH_S)
    if restarted.pid is not None:
        host.reap(restarted.pid)
    if not same_process(host, restarted):
        on = f" on {host.label}" if instance.host is not None else ""
        raise RollbackError(f"{ref.id} exited right after restart{on}; see {restarted.log or 'its log'}")
    return {"restarted": True, "pid": restarted.pid, "ready_after_s": round(waited, 3), **how, **where(instance)}


def _adopt(plan: FaultPlan, ref: TargetRef, ctx: RunContext, host: ProcessHost, instance: ProcessInstance) -> Detail:
    """The service answers under a PID we do not know — a supervisor, a person, or an earlier rollback whose
    record was lost brought it back. Find that process and record it; never start a second copy."""
    candidates = host.find(instance.match) if instance.match is not None else host.pids_running(instance.argv)
    on = f" on {host.label}" if instance.host is not None else ""
    how = "matching its rule" if instance.match is not None else "with its command line"
    if len(candidates) != 1:
        found = "no process" if not candidates else f"{len(candidates)} processes ({', '.join(map(str, candidates))})"
        raise RollbackError(
            f"{ref.id} answers its health check{on} but {found} {how} runs there: "
            "not starting a second copy; check which process serves it"
        )
    pid = candidates[0]
    adopted = instance.model_copy(update={"pid": pid, "start_time": alive_start(host.stat(pid))})
    ctx.stack.replace_instance(plan.target, adopted)
    return {"restarted": False, "adopted": True, "pid": pid, **where(instance)}


def _check_alive(host: ProcessHost, instance: ProcessInstance) -> None:
    """Raise FaultStillPresentError unless the recorded process runs (same start time) and is not stopped."""
    stat = host.stat(instance.pid) if instance.pid is not None else None
    started = alive_start(stat)
    if stat is None or started is None or (instance.start_time is not None and started != instance.start_time):
        raise FaultStillPresentError(f"{instance.name} is not running")
    if stat[0] == "T":
        raise FaultStillPresentError(f"{instance.name} (pid {instance.pid}) is still stopped")


def check_running(plan: FaultPlan, ref: TargetRef, ctx: RunContext, hosts: ProcessHosts | None = None) -> Detail:
    """One look: the process runs and is not stopped (its health is judged with its set: Redis, ZooKeeper)."""
    instance = current_instance(plan.target, ref, ctx)
    with using_hosts(hosts) as using:
        _check_alive(using.of(instance), instance)
    return {"pid": instance.pid, **where(instance)}


def _look(host: ProcessHost, instance: ProcessInstance) -> tuple[str | None, str | None]:
    """One look for `wait_stable`: (what is wrong or None, the role seen)."""
    _check_alive(host, instance)  # gone or stopped: no wait can help, fail at once
    if instance.health is not None and (reason := problem(instance.health)) is not None:
        return f"running but not healthy: {reason}", None
    if instance.role_url is None:
        return None, None
    role = role_at(instance.role_url)
    reason = role_problem(role)
    return (f"running and healthy, but {reason}" if reason else None), role


def verify_instance(instance: ProcessInstance, timeout_s: float, hosts: ProcessHosts | None = None) -> Detail:
    """The process runs, is not stopped, and its health and role (leader or follower, for an election
    participant) have held for `STABLE_WINDOW_S` within `timeout_s`; else FaultStillPresentError."""
    with using_hosts(hosts) as using:
        host = using.of(instance)
        try:
            role, waited = wait_stable(lambda: _look(host, instance), timeout_s)
        except TimeoutError as exc:
            raise FaultStillPresentError(f"{instance.name} (pid {instance.pid}) is not back: {exc}") from exc
    settled: Detail = {"role": role} if role is not None else {}
    return {"pid": instance.pid, **settled, "stable_after_s": waited, **where(instance)}


def verify_running(
    plan: FaultPlan, ref: TargetRef, ctx: RunContext, hosts: ProcessHosts | None = None, timeout_s: float = 30.0
) -> Detail:
    """`verify_instance` for a target of the plan."""
    return verify_instance(current_instance(plan.target, ref, ctx), timeout_s, hosts)


def identified_pid(plan: FaultPlan, ref: TargetRef, ctx: RunContext, hosts: ProcessHosts) -> tuple[ProcessHost, int]:
    """The planned process's host and PID, proven to be the process resolved (else nothing is signalled)."""
    instance = current_instance(plan.target, ref, ctx)
    host = hosts.of(instance)
    if instance.pid != ref.detail.get("pid") or instance.pid is None or not same_process(host, instance):
        raise InjectionError(
            f"{ref.id} (pid {ref.detail.get('pid')}) is no longer the process we resolved; nothing signalled"
        )
    return host, instance.pid


class ProcessFault(Injector[SpecT]):
    """Shared by the process kinds: one `ProcessHosts` whose SSH connections live for one step."""

    def __init__(self, spec: SpecT, hosts: ProcessHosts | None = None) -> None:
        super().__init__(spec)
        # A Redis or ZooKeeper kind passes its own: one set of SSH connections for the whole step.
        self.hosts = hosts if hosts is not None else ProcessHosts()

    def session(self) -> AbstractContextManager[object]:
        return self.hosts  # closes the step's SSH connections at its end

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        return resolve_processes(target, select, ctx, self.hosts)
