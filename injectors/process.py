"""Process faults: `process.kill` (SIGKILL/SIGTERM, restarted on rollback) and `process.pause`, here or over SSH.

A process is only ever signalled after its identity is proven: the PID must still carry the start
time recorded when we started it, so a recycled PID is never hit. Where the process lives is a
`ProcessHost`: this host (/proc, os.kill) or, for an instance with a `host`, a host reached over SSH
(the same /proc reads and `kill` run there through `injectors.ssh_api`). The fault logic is written
once against that small interface.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import Field

from injectors import http
from injectors.base import FaultPlan, FaultSpec, Injector, RunContext, SpecT, TargetRef, TargetResult
from injectors.errors import FaultStillPresentError, InjectionError, RollbackError, TargetNotFoundError
from injectors.health import problem, role_at, role_problem, wait_healthy, wait_stable
from injectors.registry import register
from injectors.selection import Selection, select
from injectors.targets import ProcessInstance, ProcessTarget, SshHost

if TYPE_CHECKING:
    from injectors.ssh_api import SshSession

_SETTLE_S = 0.1
_SETTLE_NO_HEALTH_S = 0.5
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_stat(stat: str) -> tuple[str, int]:
    """(state letter, start time in clock ticks since boot) from the text of /proc/PID/stat."""
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def _alive(stat: tuple[str, int] | None) -> int | None:
    """The start time of a live, non-zombie process, else None."""
    return None if stat is None or stat[0] in ("Z", "X") else stat[1]


def start_time_of(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie PID on this host, else None."""
    return _alive(_stat(pid))


def state_of(pid: int) -> str | None:
    """The one-letter /proc state (R, S, T, ...) of a PID on this host, or None when it is gone."""
    stat = _stat(pid)
    return stat[0] if stat is not None else None


def reap(pid: int) -> None:
    """Collect the exit status if the PID is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(instance: ProcessInstance) -> ProcessInstance:
    """Start the instance's command on this host, detached from us (own session), logging to its log file."""
    # `${VAR}` references (how secrets belong in a stack file) are expanded only here, at exec time:
    # the description, the journal and the undo ledger keep the reference, never the value.
    env = {**os.environ, **{key: os.path.expandvars(value) for key, value in instance.env.items()}}
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


class ProcessHost(Protocol):
    """Where a process instance runs: what the faults need to read, signal and start processes there."""

    label: str
    poll_s: float

    def stat(self, pid: int) -> tuple[str, int] | None:
        """(state, start time) from /proc/PID/stat, or None when there is no such PID."""
        ...

    def signal(self, pid: int, sig: signal.Signals) -> None:
        """Send `sig` to `pid`; raises OSError naming the reason when it cannot."""
        ...

    def spawn(self, instance: ProcessInstance) -> ProcessInstance:
        """Start the instance's command detached; returns it with the new PID and start time."""
        ...

    def reap(self, pid: int) -> None:
        """Collect the PID's exit status if it is a child of ours."""
        ...

    def pids_running(self, argv: list[str]) -> list[int]:
        """PIDs of live processes whose command line is exactly `argv`."""
        ...


def _local_pids_running(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if Path(entry.path, "cmdline").read_bytes() == wanted and _alive(_stat(int(entry.name))) is not None:
                    found.append(int(entry.name))
            except OSError:
                continue  # gone while we looked
    return sorted(found)


# Prints "PID<TAB>argv joined by 0x1f" for every process; argv bytes never pass through a shell word.
_LIST_SCRIPT = r"""for d in /proc/[0-9]*; do
  c=$(tr '\000' '\037' <"$d/cmdline" 2>/dev/null) || continue
  [ -n "$c" ] && printf '%s\t%s\n' "${d#/proc/}" "$c"
done
"""


class LocalHost:
    """This host: /proc and os.kill."""

    label = "this host"
    poll_s = 0.01

    def stat(self, pid: int) -> tuple[str, int] | None:
        return _stat(pid)

    def signal(self, pid: int, sig: signal.Signals) -> None:
        os.kill(pid, sig)

    def spawn(self, instance: ProcessInstance) -> ProcessInstance:
        return spawn(instance)

    def reap(self, pid: int) -> None:
        reap(pid)

    def pids_running(self, argv: list[str]) -> list[int]:
        return _local_pids_running(argv)


class RemoteHost:
    """A host reached over SSH: /proc is read with `cat`, signals are sent with `kill`, restarts go through `sh`."""

    poll_s = 0.05

    def __init__(self, session: SshSession) -> None:
        self.session = session
        self.label = session.label

    def stat(self, pid: int) -> tuple[str, int] | None:
        code, out, _ = self.session.run(["cat", f"/proc/{pid}/stat"])
        # The last line: a chatty login script of the remote user may print before our command does.
        return parse_stat(out.strip().splitlines()[-1]) if code == 0 and out.strip() else None

    def signal(self, pid: int, sig: signal.Signals) -> None:
        argv = ["kill", "-s", sig.name.removeprefix("SIG"), str(pid)]
        code, _, err = self.session.run(argv)
        if code != 0:
            raise OSError(f"`{shlex.join(argv)}` on {self.label} failed: {err.strip() or f'exit code {code}'}")

    def spawn(self, instance: ProcessInstance) -> ProcessInstance:
        # The script goes over stdin, not argv: expanded `${VAR}` values (secrets) never show in `ps` there.
        code, out, err = self.session.run(["sh", "-s"], stdin=restart_script(instance))
        last = out.strip().splitlines()[-1] if out.strip() else ""
        if code != 0 or not last.isdigit():
            raise OSError(f"starting {instance.name} on {self.label} failed: {err.strip() or f'exit code {code}'}")
        pid = int(last)
        return instance.model_copy(update={"pid": pid, "start_time": _alive(self.stat(pid))})

    def reap(self, pid: int) -> None:
        """Nothing to do: the remote shell that started the process has exited, so init reaps it."""

    def pids_running(self, argv: list[str]) -> list[int]:
        code, out, err = self.session.run(["sh", "-s"], stdin=_LIST_SCRIPT)
        if code != 0:
            raise OSError(f"listing the processes on {self.label} failed: {err.strip() or f'exit code {code}'}")
        wanted = "\x1f".join(argv) + "\x1f"
        found = []
        for line in out.splitlines():
            pid, _, cmdline = line.partition("\t")
            if pid.isdigit() and cmdline == wanted and _alive(self.stat(int(pid))) is not None:
                found.append(int(pid))
        return sorted(found)


def restart_script(instance: ProcessInstance) -> str:
    """A POSIX sh script that starts the instance detached (setsid, nohup) and prints its PID; every value quoted."""
    lines = ["set -e"]
    if instance.cwd:
        lines.append(f"cd -- {shlex.quote(instance.cwd)}")
    for key, value in instance.env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"{instance.name}: {key!r} is not a valid environment variable name")
        # Expanded here, like a local restart, from the runner's environment.
        lines.append(f"{key}={shlex.quote(os.path.expandvars(value))}; export {key}")
    log = instance.log or "/dev/null"
    if instance.log:
        lines.append(f"mkdir -p -- {shlex.quote(str(PurePosixPath(instance.log).parent))}")
    lines.append(f"{shlex.join(['setsid', 'nohup', *instance.argv])} >>{shlex.quote(log)} 2>&1 </dev/null &")
    lines.append('echo "$!"')
    return "\n".join(lines) + "\n"


LOCAL = LocalHost()


class ProcessHosts:
    """The hosts of one injector call: this one, and one SSH connection per remote host, closed on exit."""

    def __init__(self) -> None:
        self._remote: dict[str, RemoteHost] = {}
        self._lock = threading.Lock()

    def of(self, instance: ProcessInstance) -> ProcessHost:
        if instance.host is None:
            return LOCAL
        return self.remote(instance.host)

    def remote(self, host: SshHost) -> RemoteHost:
        key = host.model_dump_json()
        with self._lock:
            if key not in self._remote:
                from injectors.ssh_api import SshSession  # paramiko is loaded only when a remote host is used

                self._remote[key] = RemoteHost(SshSession(host))
            return self._remote[key]

    def close(self) -> None:
        with self._lock:
            for remote in self._remote.values():
                remote.session.close()
            self._remote.clear()

    def __enter__(self) -> ProcessHosts:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextlib.contextmanager
def _using(hosts: ProcessHosts | None) -> Iterator[ProcessHosts]:
    """The caller's hosts, or fresh ones closed afterwards."""
    if hosts is not None:
        yield hosts
        return
    with ProcessHosts() as fresh:
        yield fresh


def _same_process(host: ProcessHost, instance: ProcessInstance) -> bool:
    if instance.pid is None:
        return False
    started = _alive(host.stat(instance.pid))
    return started is not None and (instance.start_time is None or started == instance.start_time)


def is_running(instance: ProcessInstance, hosts: ProcessHosts | None = None) -> bool:
    """True when the instance's recorded PID is alive (on its host) and is still the same process."""
    if instance.pid is None:
        return False
    with _using(hosts) as using:
        return _same_process(using.of(instance), instance)


def _wait_exit(host: ProcessHost, pid: int, timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        host.reap(pid)
        if _alive(host.stat(pid)) is None:
            return time.monotonic() - started
        time.sleep(host.poll_s)
    return None


def wait_exit(pid: int, timeout_s: float) -> float | None:
    """Seconds until the PID on this host exited (zombies count as exited), or None on timeout."""
    return _wait_exit(LOCAL, pid, timeout_s)


def role_of(instance: ProcessInstance, timeout_s: float = 1.0, hosts: ProcessHosts | None = None) -> str | None:
    """The live role an instance reports at its role_url, or None when it does not answer."""
    if instance.role_url is None or not is_running(instance, hosts):
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


def _where(instance: ProcessInstance) -> dict[str, Any]:
    """Journal detail naming the remote host (never its key or passphrase); nothing for this host."""
    return {"host": instance.host.label} if instance.host is not None else {}


def _resolve_processes(
    target: str, selection: Selection | None, ctx: RunContext, hosts: ProcessHosts
) -> list[TargetRef]:
    group = process_target(target, ctx)
    chosen = select(
        group.instances, selection, ctx.rng, name_of=lambda i: i.name, role_of=lambda i: role_of(i, hosts=hosts)
    )
    down = [i.name for i in chosen if not is_running(i, hosts)]
    if down:
        raise InjectionError(f"instance(s) {', '.join(down)} of {target!r} are not running")
    return [TargetRef(id=i.name, detail={"pid": i.pid, "start_time": i.start_time, **_where(i)}) for i in chosen]


def _ensure_running(
    plan: FaultPlan, ref: TargetRef, ctx: RunContext, ready_timeout_s: float, hosts: ProcessHosts
) -> dict[str, Any]:
    instance = current_instance(plan.target, ref, ctx)
    host = hosts.of(instance)
    if _same_process(host, instance):
        if instance.health is not None and problem(instance.health) is not None:
            wait_healthy(instance.health, ready_timeout_s)
        return {"restarted": False, "pid": instance.pid, **_where(instance)}
    if instance.health is not None and problem(instance.health) is None:
        return _adopt(plan, ref, ctx, host, instance)
    restarted = host.spawn(instance)
    ctx.stack.replace_instance(plan.target, restarted)
    waited = wait_healthy(restarted.health, ready_timeout_s) if restarted.health else 0.0
    # Without a health check, a process that dies on start-up would still look alive for a moment.
    time.sleep(_SETTLE_S if restarted.health else _SETTLE_NO_HEALTH_S)
    if restarted.pid is not None:
        host.reap(restarted.pid)
    if not _same_process(host, restarted):
        on = f" on {host.label}" if instance.host is not None else ""
        raise RollbackError(f"{ref.id} exited right after restart{on}; see {restarted.log}")
    return {"restarted": True, "pid": restarted.pid, "ready_after_s": round(waited, 3), **_where(instance)}


def _check_alive(host: ProcessHost, instance: ProcessInstance) -> None:
    """Raise FaultStillPresentError unless the recorded process runs (same start time) and is not stopped."""
    stat = host.stat(instance.pid) if instance.pid is not None else None
    started = _alive(stat)
    if stat is None or started is None or (instance.start_time is not None and started != instance.start_time):
        raise FaultStillPresentError(f"{instance.name} is not running")
    if stat[0] == "T":
        raise FaultStillPresentError(f"{instance.name} (pid {instance.pid}) is still stopped")


def check_running(plan: FaultPlan, ref: TargetRef, ctx: RunContext) -> dict[str, Any]:
    """One look: the process runs and is not stopped (its health is judged with its set: Redis, ZooKeeper)."""
    instance = current_instance(plan.target, ref, ctx)
    with _using(None) as using:
        _check_alive(using.of(instance), instance)
    return {"pid": instance.pid, **_where(instance)}


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


def _adopt(
    plan: FaultPlan, ref: TargetRef, ctx: RunContext, host: ProcessHost, instance: ProcessInstance
) -> dict[str, Any]:
    """The service answers under a PID we do not know — a supervisor, a person, or an earlier rollback whose
    record was lost brought it back. Find that process and record it; never start a second copy."""
    candidates = host.pids_running(instance.argv)
    on = f" on {host.label}" if instance.host is not None else ""
    if len(candidates) != 1:
        found = "no process" if not candidates else f"{len(candidates)} processes ({', '.join(map(str, candidates))})"
        raise RollbackError(
            f"{ref.id} answers its health check{on} but {found} with its command line runs there: "
            "not starting a second copy; check which process serves it"
        )
    pid = candidates[0]
    adopted = instance.model_copy(update={"pid": pid, "start_time": _alive(host.stat(pid))})
    ctx.stack.replace_instance(plan.target, adopted)
    return {"restarted": False, "adopted": True, "pid": pid, **_where(instance)}


def verify_instance(instance: ProcessInstance, timeout_s: float, hosts: ProcessHosts | None = None) -> dict[str, Any]:
    """The process runs, is not stopped, and its health and role (leader or follower, for an election
    participant) have held for `STABLE_WINDOW_S` within `timeout_s`; else FaultStillPresentError."""
    with _using(hosts) as using:
        host = using.of(instance)
        try:
            role, waited = wait_stable(lambda: _look(host, instance), timeout_s)
        except TimeoutError as exc:
            raise FaultStillPresentError(f"{instance.name} (pid {instance.pid}) is not back: {exc}") from exc
    settled = {"role": role} if role is not None else {}
    return {"pid": instance.pid, **settled, "stable_after_s": waited, **_where(instance)}


def verify_running(
    plan: FaultPlan, ref: TargetRef, ctx: RunContext, hosts: ProcessHosts | None = None, timeout_s: float = 30.0
) -> dict[str, Any]:
    """`verify_instance` for a target of the plan."""
    return verify_instance(current_instance(plan.target, ref, ctx), timeout_s, hosts)


def _identified_pid(plan: FaultPlan, ref: TargetRef, ctx: RunContext, hosts: ProcessHosts) -> tuple[ProcessHost, int]:
    instance = current_instance(plan.target, ref, ctx)
    host = hosts.of(instance)
    if instance.pid != ref.detail.get("pid") or instance.pid is None or not _same_process(host, instance):
        raise InjectionError(
            f"{ref.id} (pid {ref.detail.get('pid')}) is no longer the process we resolved; nothing signalled"
        )
    return host, instance.pid


class _ProcessFault(Injector[SpecT]):
    """Shared by the process kinds: one `ProcessHosts` whose SSH connections live for one call."""

    def __init__(self, spec: SpecT) -> None:
        super().__init__(spec)
        self.hosts = ProcessHosts()

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        with self.hosts:
            return _resolve_processes(target, select, ctx, self.hosts)

    def inject(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        with self.hosts:
            return super().inject(plan, ctx)

    def rollback(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        with self.hosts:
            return super().rollback(plan, ctx)

    def verify_gone(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        with self.hosts:
            return super().verify_gone(plan, ctx)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        # The same bound as for the rollback's wait for health: a process that became healthy may need it again.
        return verify_running(plan, ref, ctx, self.hosts, timeout_s=float(getattr(self.spec, "ready_timeout_s", 30.0)))


class ProcessKillSpec(FaultSpec):
    """Kill the process; rollback starts it again with its recorded command line."""

    signal: Literal["SIGKILL", "SIGTERM"] = Field(default="SIGKILL", description="Signal to send.")
    exit_timeout_s: float = Field(default=10.0, gt=0, description="How long to wait for the process to exit.")
    ready_timeout_s: float = Field(
        default=30.0, gt=0, description="How long the restarted process may take to pass its health check."
    )


@register
class ProcessKillInjector(_ProcessFault[ProcessKillSpec]):
    kind: ClassVar[str] = "process.kill"
    spec_type: ClassVar[type[FaultSpec]] = ProcessKillSpec
    summary: ClassVar[str] = "Kill processes of a target (SIGKILL or SIGTERM); rollback restarts them."

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        host, pid = _identified_pid(plan, ref, ctx, self.hosts)
        host.signal(pid, signal.Signals[self.spec.signal])
        exited_after = _wait_exit(host, pid, self.spec.exit_timeout_s)
        if exited_after is None:
            raise InjectionError(
                f"{ref.id} (pid {pid}) still running {self.spec.exit_timeout_s}s after {self.spec.signal}"
            )
        instance = current_instance(plan.target, ref, ctx)
        ctx.stack.replace_instance(plan.target, instance.model_copy(update={"pid": None}))
        return {"pid": pid, "signal": self.spec.signal, "exited_after_s": round(exited_after, 3), **_where(instance)}

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        return _ensure_running(plan, ref, ctx, self.spec.ready_timeout_s, self.hosts)


class ProcessPauseSpec(FaultSpec):
    """Freeze the process with SIGSTOP; rollback resumes it with SIGCONT."""

    ready_timeout_s: float = Field(
        default=30.0, gt=0, description="How long the resumed process may take to pass its health check."
    )


@register
class ProcessPauseInjector(_ProcessFault[ProcessPauseSpec]):
    kind: ClassVar[str] = "process.pause"
    spec_type: ClassVar[type[FaultSpec]] = ProcessPauseSpec
    summary: ClassVar[str] = "Freeze processes of a target (SIGSTOP); rollback resumes them (SIGCONT)."

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        host, pid = _identified_pid(plan, ref, ctx, self.hosts)
        host.signal(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 2.0
        while (stat := host.stat(pid)) is None or stat[0] != "T":
            if time.monotonic() > deadline:
                raise InjectionError(f"{ref.id} (pid {pid}) did not stop after SIGSTOP")
            time.sleep(host.poll_s / 2)
        return {"pid": pid, "signal": "SIGSTOP", **_where(current_instance(plan.target, ref, ctx))}

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        instance = current_instance(plan.target, ref, ctx)
        host = self.hosts.of(instance)
        if instance.pid is not None and _same_process(host, instance):
            host.signal(instance.pid, signal.SIGCONT)
            if instance.health is not None:
                wait_healthy(instance.health, self.spec.ready_timeout_s)
            return {"pid": instance.pid, "signal": "SIGCONT", **_where(instance)}
        # It died while frozen (or someone killed it): bring it back like a killed process.
        return _ensure_running(plan, ref, ctx, self.spec.ready_timeout_s, self.hosts)
