"""Process control on a host: read /proc, signal, start detached, find by command line — here or over SSH.

No fault logic: the process, Redis and ZooKeeper faults and the reference stack's launcher use it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from clients.errors import NotFoundError
from clients.health import role_at
from clients.host_scripts import LIST_SCRIPT, NO_TEMP_FILE, OUTPUT_TAIL_BYTES, has_program_argv, run_script
from clients.host_scripts import restart_script as restart_script
from clients.poll import PollTimeout, poll_until
from clients.proc_match import local_matches, remote_matches, remote_script
from stackspec.match import ProcessMatch
from stackspec.targets import ProcessInstance, SshHost

if TYPE_CHECKING:
    from clients.ssh import SshSession


def parse_stat(stat: str) -> tuple[str, int]:
    """(state letter, start time in clock ticks since boot) from the text of /proc/PID/stat."""
    # The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def read_stat(pid: int) -> tuple[str, int] | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


def alive_start(stat: tuple[str, int] | None) -> int | None:
    """The start time of a live, non-zombie process, else None."""
    return None if stat is None or stat[0] in ("Z", "X") else stat[1]


def start_time_of(pid: int) -> int | None:
    """Start time (clock ticks since boot) of a live, non-zombie PID on this host, else None."""
    return alive_start(read_stat(pid))


def state_of(pid: int) -> str | None:
    """The one-letter /proc state (R, S, T, ...) of a PID on this host, or None when it is gone."""
    stat = read_stat(pid)
    return stat[0] if stat is not None else None


def environment_with(declared: Mapping[str, str]) -> dict[str, str]:
    """This process's environment plus `declared`, with `${VAR}` in the declared values expanded now."""
    return {**os.environ, **{key: os.path.expandvars(value) for key, value in declared.items()}}


def reap(pid: int) -> None:
    """Collect the exit status if the PID is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(instance: ProcessInstance) -> ProcessInstance:
    """Start the instance's command on this host, detached from us (own session), logging to its log file."""
    # `${VAR}` references (how secrets belong in a stack file) are expanded only here, at exec time:
    # the description, the journal and the undo ledger keep the reference, never the value.
    env = environment_with(instance.env)
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

    def find(self, rule: ProcessMatch) -> list[int]:
        """PIDs of live processes there that satisfy every rule of `rule`."""
        ...

    def run(self, argv: list[str], timeout_s: float) -> tuple[int, str]:
        """Run `argv` there without a shell, its output in a temporary file (a daemon it starts cannot hold us);
        returns (exit status, the output's tail). Raises OSError when it cannot run or outlasts `timeout_s`."""
        ...

    def has_program(self, name: str) -> bool:
        """True when `name` (a path, or a program in PATH) can be run there."""
        ...


def local_pids_running(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                pid = int(entry.name)
                if Path(entry.path, "cmdline").read_bytes() == wanted and alive_start(read_stat(pid)) is not None:
                    found.append(pid)
            except OSError:
                continue  # gone while we looked
    return sorted(found)


class LocalHost:
    """This host: /proc and os.kill."""

    label = "this host"
    poll_s = 0.01

    def stat(self, pid: int) -> tuple[str, int] | None:
        return read_stat(pid)

    def signal(self, pid: int, sig: signal.Signals) -> None:
        os.kill(pid, sig)

    def spawn(self, instance: ProcessInstance) -> ProcessInstance:
        return spawn(instance)

    def reap(self, pid: int) -> None:
        reap(pid)

    def pids_running(self, argv: list[str]) -> list[int]:
        return local_pids_running(argv)

    def find(self, rule: ProcessMatch) -> list[int]:
        return local_matches(rule)

    def run(self, argv: list[str], timeout_s: float) -> tuple[int, str]:
        return run_local(argv, timeout_s)

    def has_program(self, name: str) -> bool:
        if "/" in name:
            return os.path.isfile(name) and os.access(name, os.X_OK)
        return shutil.which(name) is not None


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
        return instance.model_copy(update={"pid": pid, "start_time": alive_start(self.stat(pid))})

    def reap(self, pid: int) -> None:
        """Nothing to do: the remote shell that started the process has exited, so init reaps it."""

    def pids_running(self, argv: list[str]) -> list[int]:
        code, out, err = self.session.run(["sh", "-s"], stdin=LIST_SCRIPT)
        if code != 0:
            raise OSError(f"listing the processes on {self.label} failed: {err.strip() or f'exit code {code}'}")
        wanted = "\x1f".join(argv) + "\x1f"
        found = []
        for line in out.splitlines():
            pid, _, cmdline = line.partition("\t")
            if pid.isdigit() and cmdline == wanted and alive_start(self.stat(int(pid))) is not None:
                found.append(int(pid))
        return sorted(found)

    def find(self, rule: ProcessMatch) -> list[int]:
        code, out, err = self.session.run(["sh", "-s"], stdin=remote_script(rule))
        if code != 0:
            raise OSError(f"looking for {rule.label} on {self.label} failed: {err.strip() or f'exit code {code}'}")
        return [pid for pid in remote_matches(rule, out) if alive_start(self.stat(pid)) is not None]

    def run(self, argv: list[str], timeout_s: float) -> tuple[int, str]:
        # A little longer than the host's own `timeout`, so that its exit 124 is what we see.
        code, out, err = self.session.run(["sh", "-s"], stdin=run_script(argv, timeout_s), timeout_s=timeout_s + 5)
        if code == 125 and NO_TEMP_FILE in err:
            raise OSError(f"{NO_TEMP_FILE} on {self.label}: {err.strip()}")
        if code == 124:
            raise OSError(f"`{shlex.join(argv)}` on {self.label} did not finish within {timeout_s:g}s (exit 124)")
        return code, (out + err)[-OUTPUT_TAIL_BYTES:]

    def has_program(self, name: str) -> bool:
        code, _, err = self.session.run(has_program_argv(name))
        if code not in (0, 1, 127):
            raise OSError(f"looking for {name} on {self.label} failed: {err.strip() or f'exit code {code}'}")
        return code == 0


def run_local(argv: list[str], timeout_s: float) -> tuple[int, str]:
    """`ProcessHost.run` on this host: no shell, output to a temporary file, its own session, bounded."""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise OSError(f"`{shlex.join(argv)}` on this host did not finish within {timeout_s:g}s") from None
        out.seek(0)
        tail = out.read()[-OUTPUT_TAIL_BYTES:].decode(errors="replace")
    return proc.returncode, tail


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
                from clients.ssh import SshSession  # paramiko is loaded only when a remote host is used

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
def using_hosts(hosts: ProcessHosts | None) -> Iterator[ProcessHosts]:
    """The caller's hosts, or fresh ones closed afterwards."""
    if hosts is not None:
        yield hosts
        return
    with ProcessHosts() as fresh:
        yield fresh


def same_process(host: ProcessHost, instance: ProcessInstance) -> bool:
    if instance.pid is None:
        return False
    started = alive_start(host.stat(instance.pid))
    return started is not None and (instance.start_time is None or started == instance.start_time)


class MatchError(NotFoundError):
    """A `match` rule found no process, or more than the one it must find."""


def found_by_rule(host: ProcessHost, instance: ProcessInstance) -> ProcessInstance:
    """`instance` with the PID and start time of the one process its `match` rule finds on `host`.

    Kept as it is when it has no rule, or when its recorded PID still runs as the same process (found
    earlier, or restarted by a rollback). MatchError when the rule finds none or several.
    """
    if instance.match is None or same_process(host, instance):
        return instance
    try:
        pids = host.find(instance.match)
    except OSError as exc:
        raise MatchError(f"{instance.name}: {exc}") from exc
    on = "this host" if instance.host is None else host.label
    if len(pids) != 1:
        found = "no process" if not pids else f"{len(pids)} processes (pids {', '.join(map(str, pids))})"
        hint = "is it running?" if not pids else "make the rule narrower, e.g. add exe, pidfile or listen_port"
        verb = "match" if pids else "matches"
        raise MatchError(f"{instance.name}: {found} on {on} {verb} {instance.match.label}; {hint}")
    start = alive_start(host.stat(pids[0]))
    if start is None:
        raise MatchError(f"{instance.name}: pid {pids[0]} on {on} matched {instance.match.label} and exited")
    return instance.model_copy(update={"pid": pids[0], "start_time": start})


def is_running(instance: ProcessInstance, hosts: ProcessHosts | None = None) -> bool:
    """True when the instance's recorded PID is alive (on its host) and is still the same process."""
    if instance.pid is None:
        return False
    with using_hosts(hosts) as using:
        return same_process(using.of(instance), instance)


def wait_exit_on(host: ProcessHost, pid: int, timeout_s: float) -> float | None:
    """Seconds until the PID on `host` exited (zombies count as exited), or None on timeout."""

    def look() -> tuple[str | None, None]:
        host.reap(pid)
        if alive_start(host.stat(pid)) is not None:
            return f"pid {pid} still runs", None
        host.reap(pid)  # it may have become a zombie between the first reap and the look: collect it now
        return None, None

    try:
        return poll_until(look, timeout_s, host.poll_s, f"exited (pid {pid} on {host.label})")[1]
    except PollTimeout:
        return None


def wait_exit(pid: int, timeout_s: float) -> float | None:
    """Seconds until the PID on this host exited (zombies count as exited), or None on timeout."""
    return wait_exit_on(LOCAL, pid, timeout_s)


def role_of(instance: ProcessInstance, timeout_s: float = 1.0, hosts: ProcessHosts | None = None) -> str | None:
    """The live role an instance reports at its role_url, or None when it does not answer or does not run."""
    if instance.role_url is None or not is_running(instance, hosts):
        return None
    return role_at(instance.role_url, timeout_s)
