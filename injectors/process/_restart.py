"""Supervised services: a process brought back by a restart command or by its own supervisor, then found anew.

`restart: {by: command}` runs the command on the instance's host (its output in a temporary file there,
so a daemon holding its stdout open cannot hang the rollback) and checks its exit status;
`restart: {by: supervisor}` runs nothing. Either way the rollback then waits, at most `timeout_s`, for
exactly one *new* process to match the instance (its `match` rules, else its exact argv): the killed
PID with its start time is not new. The new process is recorded and must pass its health check.
"""

from __future__ import annotations

import shlex
import time

from pydantic import JsonValue

from clients.errors import ClientError
from clients.poll import PollTimeout, poll_until
from clients.procs import ProcessHost, alive_start
from injectors.errors import RollbackError, TargetNotFoundError
from stackspec.restart import Restart
from stackspec.targets import ProcessInstance

Old = tuple[int | None, int | None]  # (pid, start time) of the process the fault left dead


def managed(instance: ProcessInstance) -> Restart | None:
    """The instance's restart when it is by command or supervisor (not from argv), else None."""
    restart = instance.restart
    return restart if restart is not None and restart.by != "argv" else None


def _on(host: ProcessHost, instance: ProcessInstance) -> str:
    return "this host" if instance.host is None else host.label


def new_processes(host: ProcessHost, instance: ProcessInstance, old: Old) -> list[tuple[int, int]]:
    """(pid, start time) of the live processes that are this instance and are not the `old` one."""
    pids = host.find(instance.match) if instance.match is not None else host.pids_running(instance.argv)
    found = []
    for pid in pids:
        start = alive_start(host.stat(pid))
        if start is not None and (pid, start) != old:
            found.append((pid, start))
    return found


def wait_new(host: ProcessHost, instance: ProcessInstance, old: Old, timeout_s: float) -> tuple[int, int]:
    """The one new process of the instance, once it appears within `timeout_s`; else RollbackError."""
    how = f"matching {instance.match.label}" if instance.match is not None else "with its argv"

    def look() -> tuple[str | None, tuple[int, int] | None]:
        try:
            found = new_processes(host, instance, old)
        except (OSError, ClientError) as exc:
            return f"cannot look: {exc}", None
        if len(found) == 1:
            return None, found[0]
        if not found:
            return f"no new process {how}", None
        return f"{len(found)} new processes {how} (pids {', '.join(str(p) for p, _ in found)})", None

    try:
        found, _ = poll_until(look, timeout_s, max(host.poll_s, 0.05) * 4, f"{instance.name} back")
    except PollTimeout as exc:
        by = "its supervisor" if instance.restart is None or instance.restart.by == "supervisor" else "its command"
        raise RollbackError(
            f"{instance.name} was not brought back by {by} on {_on(host, instance)} within {timeout_s:g}s: {exc.last}"
        ) from None
    assert found is not None  # a look without a problem names the process
    return found


def run_command(host: ProcessHost, instance: ProcessInstance, restart: Restart) -> None:
    """Run the instance's restart command on its host; RollbackError when it cannot run or exits non-zero."""
    shown = shlex.join(restart.command)
    try:
        code, output = host.run(restart.command, restart.timeout_s)
    except (OSError, ClientError) as exc:
        raise RollbackError(f"{instance.name}: restart command `{shown}` on {_on(host, instance)}: {exc}") from exc
    if code != 0:
        said = " | ".join(line.strip() for line in output.strip().splitlines()[-3:] if line.strip())
        raise RollbackError(
            f"{instance.name}: restart command `{shown}` on {_on(host, instance)} exited with status {code}"
            + (f": {said}" if said else " (no output)")
        )


def bring_back(host: ProcessHost, instance: ProcessInstance, old: Old) -> tuple[ProcessInstance, dict[str, JsonValue]]:
    """Run the command (unless a new process already serves) or wait for the supervisor; the new instance
    and the journal detail (restart_by, restart_command, appeared_after_s)."""
    restart = managed(instance)
    assert restart is not None
    began = time.monotonic()
    detail: dict[str, JsonValue] = {"restart_by": restart.by}
    if restart.by == "command":
        detail["restart_command"] = list(restart.command)
        if len(new_processes(host, instance, old)) == 1:
            detail["adopted"] = True  # someone brought it back already: never start a second copy
        else:
            run_command(host, instance, restart)
    pid, start = wait_new(host, instance, old, restart.timeout_s)
    detail["appeared_after_s"] = round(time.monotonic() - began, 3)
    return instance.model_copy(update={"pid": pid, "start_time": start}), detail


def check_program(host: ProcessHost, target: str, instance: ProcessInstance) -> None:
    """At resolve: the restart command's program exists on the instance's host; else TargetNotFoundError."""
    restart = managed(instance)
    if restart is None or restart.program is None:
        return
    try:
        present = host.has_program(restart.program)
    except (OSError, ClientError) as exc:
        raise TargetNotFoundError(
            f"target {target!r}, instance {instance.name}: cannot check restart program {restart.program!r} "
            f"on {_on(host, instance)}: {exc}"
        ) from exc
    if not present:
        raise TargetNotFoundError(
            f"target {target!r}, instance {instance.name}: restart program {restart.program!r} is not installed "
            f"on {_on(host, instance)} (not in PATH there, or not executable); fix `restart.command`"
        )
