"""The load generator: Locust in its own process(es), streaming per-second metrics through a JSON-Lines file.

The engine never imports locust (it monkey-patches the whole process with gevent on import). Our
metrics plugin is added to the user's locustfile with Locust's own `-f a.py,b.py`, so any locustfile
streams metrics without changes; see docs/contracts.md §2 for the stream. With several workers a
Locust master runs beside them and writes what every worker measured; the reader (engine.metrics)
merges the workers' per-second histograms exactly (docs/distributed-load.md).

The parts that start no process (LoadDriver, Distribution, JsonLinesTail, plugin_path, local_address)
are in engine.load_setup; they are importable from here too.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from engine.errors import LoadError
from engine.integrity import LEDGER_DIR
from engine.journal import LoadRecord
from engine.load_setup import Distribution as Distribution
from engine.load_setup import JsonLinesTail as JsonLinesTail
from engine.load_setup import LoadDriver as LoadDriver
from engine.load_setup import local_address as local_address
from engine.load_setup import plugin_path as plugin_path

LOCUST_DEFAULT_MASTER_PORT = 5557
STOP_TIMEOUT_S = 2  # users finish their current task this long after the run time ends
MASTER_STOP_WAIT_S = 10.0
WORKER_QUIT_WAIT_S = 5.0  # workers quit on the master's word; after this they are signalled


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the runner dies (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _how(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class LocustLoad:
    """Runs Locust headless for the experiment's load and tails the metrics file.

    One process by default. Distributed, a master on loopback (or on `master_host`) and `workers` local
    worker processes, every one started, stopped and reaped by its PID; the master writes the metrics
    of all workers. A worker that dies during the run is noted in the load record; the load goes on as
    long as the master lives and a worker is left (the master re-spreads the users over the others).
    """

    def __init__(
        self, record: LoadRecord, locustfile: Path, run_dir: Path, distribution: Distribution | None = None
    ) -> None:
        self.record = record
        self.locustfile = locustfile
        self.run_dir = run_dir
        self.distribution = distribution or Distribution()
        self.metrics_file = run_dir / "metrics.jsonl"
        self.ledger_dir = run_dir / LEDGER_DIR
        self.log_file = run_dir / "locust.log"
        self.record.log = str(self.log_file)
        self.record.workers = self.distribution.workers + self.distribution.remote_workers
        self.record.remote_workers = self.distribution.remote_workers
        self._tail = JsonLinesTail(self.metrics_file)
        self._pending: list[dict[str, Any]] = []
        self._proc: subprocess.Popen[bytes] | None = None  # the single process, or the master
        self._workers: list[subprocess.Popen[bytes]] = []
        self._accounted: set[int] = set()  # workers whose exit is accounted for (noted or normal)
        self._signalled: set[int] = set()  # workers this object sent SIGTERM to
        self._killed: set[int] = set()  # workers this object had to kill
        self._stopping = False
        self._master: tuple[str, int] | None = None

    @property
    def pids(self) -> list[int]:
        """PIDs of every Locust process started: the single process or the master first, then the workers."""
        return [p.pid for p in ([self._proc] if self._proc else []) + self._workers]

    @property
    def worker_processes(self) -> list[subprocess.Popen[bytes]]:
        return list(self._workers)

    def master_address(self) -> tuple[str, int]:
        """(bind host, port) of the master, chosen once; the port is a free one unless the spec fixes it."""
        if self._master is None:
            dist = self.distribution
            bind = dist.bind_host()
            port = dist.master_port or (LOCUST_DEFAULT_MASTER_PORT if dist.master_host else _free_port(bind))
            self._master = (bind, port)
        return self._master

    def _locust(self) -> list[str]:
        return [sys.executable, "-m", "locust", "-f", f"{self.locustfile},{plugin_path()}"]

    def command(self) -> list[str]:
        """The command line of the single Locust process, or of the master when the load is distributed."""
        rec = self.record
        argv = [
            *self._locust(),
            "--headless",
            "--users",
            str(rec.users),
            "--spawn-rate",
            f"{rec.spawn_rate:g}",
            "--run-time",
            f"{math.ceil(rec.duration_s)}s",
            "--stop-timeout",
            str(STOP_TIMEOUT_S),
            "--only-summary",
            "--exit-code-on-error",
            "0",
        ]
        if not self.distribution.distributed:
            return argv
        bind, port = self.master_address()
        return [
            *argv,
            "--master",
            "--master-bind-host",  # always explicit: Locust's default is every interface
            bind,
            "--master-bind-port",
            str(port),
            "--expect-workers",
            str(rec.workers),
            "--expect-workers-max-wait",
            str(math.ceil(self.distribution.join_timeout_s)),
            "--enable-rebalancing",  # a lost worker's users move to the others
        ]

    def worker_command(self) -> list[str]:
        """The command line of a local worker."""
        bind, port = self.master_address()
        return [*self._locust(), "--worker", "--master-host", local_address(bind), "--master-port", str(port)]

    def join_command(self) -> str:
        """What to run on another machine to join this load as a worker (master_host mode)."""
        _bind, port = self.master_address()
        host = self.distribution.master_host or "127.0.0.1"
        return (
            f"CHAOS_LEDGER_DIR=<dir> locust -f {self.locustfile.name},metrics_plugin.py --worker "
            f"--master-host {host} --master-port {port}"
        )

    def check_target(self) -> str | None:
        host = self.record.host or ""
        parsed = urllib.parse.urlsplit(host)
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            with socket.create_connection((parsed.hostname or "", port), timeout=2.0):
                return None
        except (OSError, ValueError) as exc:
            return f"load target {host!r} does not accept connections: {exc}"

    def _spawn(self, argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.locustfile.parent,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # a SIGKILLed runner must not leave its load running
            )

    def worker_log(self, index: int) -> Path:
        """The log file of local worker `index` (1-based)."""
        return self.run_dir / f"locust-worker-{index}.log"

    def start(self) -> None:
        # Every process that places orders appends its acknowledgements under ledger/ (docs/contracts.md §4).
        env = {**os.environ, "CHAOS_METRICS_FILE": str(self.metrics_file), "CHAOS_LEDGER_DIR": str(self.ledger_dir)}
        # The target goes in the environment, not on the command line: a URL may carry credentials, and
        # every local user can read a command line in `ps` (a process's environment only its owner can).
        env["LOCUST_HOST"] = self.record.host or ""
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        self._proc = self._spawn(self.command(), self.log_file, env)
        if not self.distribution.distributed:
            return
        bind, port = self.master_address()
        self.record.master = f"{bind}:{port}"
        try:
            for index in range(1, self.distribution.workers + 1):
                self._workers.append(self._spawn(self.worker_command(), self.worker_log(index), env))
        except OSError as exc:
            self.stop()
            raise LoadError(f"could not start Locust worker {len(self._workers) + 1}: {exc}") from exc
        if self.distribution.remote_workers:
            self.note(
                f"waiting up to {self.distribution.join_timeout_s:g}s for {self.distribution.remote_workers} "
                f"remote worker(s); on each machine run: {self.join_command()}. Their acknowledgement ledgers "
                "stay on their machines: the integrity checks see the local workers' orders only"
            )

    def note(self, text: str) -> None:
        """Add a line to the load record's notes and to the master's log."""
        self.record.notes.append(text)
        with contextlib.suppress(OSError), self.log_file.open("a") as log:
            log.write(f"[chaos] {text}\n")

    def wait_started(self, timeout_s: float) -> float:
        if self.distribution.distributed:
            timeout_s += self.distribution.join_timeout_s
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            records = self._tail.read()
            self._pending.extend(records)
            for rec in records:
                if rec.get("type") == "start":
                    self.record.started_at = float(rec["t"])
                    return self.record.started_at
            if self._proc is None or self._proc.poll() is not None:
                self.stop()
                raise LoadError(f"Locust exited before the load started; see {self.log_file}:\n{self._log_tail()}")
            for index, worker in enumerate(self._workers, 1):
                if worker.poll() is not None:
                    self.stop()
                    log = self.worker_log(index)
                    raise LoadError(
                        f"Locust worker {index} exited ({_how(worker.returncode)}) before the load started; "
                        f"see {log}:\n{self._log_tail(log)}"
                    )
            time.sleep(0.05)
        self.stop()
        waiting = f" (were all {self.record.workers} workers able to join?)" if self.distribution.distributed else ""
        raise LoadError(f"Locust did not start the load within {timeout_s:.0f}s{waiting}; see {self.log_file}")

    def poll(self) -> list[dict[str, Any]]:
        self._check_workers()
        records, self._pending = self._pending + self._tail.read(), []
        return records

    def running(self) -> bool:
        self._check_workers()
        if self._proc is None or self._proc.poll() is not None:
            return False
        # With no worker left the master would wait forever for one; remote workers may still be there.
        return not self._workers or self.distribution.remote_workers > 0 or any(w.poll() is None for w in self._workers)

    def wait_finished(self, timeout_s: float) -> bool:
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        self._stop_workers()
        self._finished()
        return True

    def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # SIGTERM lets Locust run its test_stop hooks, so the plugin flushes its last seconds; a master
            # also tells its workers to quit.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=MASTER_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._stop_workers()
        self._finished()

    def _stop_workers(self) -> None:
        """Give the workers time to quit on the master's word, then SIGTERM, then SIGKILL; reap them all."""
        self._stopping = True
        deadline = time.monotonic() + WORKER_QUIT_WAIT_S
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            alive = [w for w in self._workers if w.poll() is None]
            if not alive:
                break
            for worker in alive:
                if sig is not None:
                    (self._killed if sig == signal.SIGKILL else self._signalled).add(worker.pid)
                    worker.send_signal(sig)
            for worker in alive:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            deadline = time.monotonic() + WORKER_QUIT_WAIT_S
        self._check_workers()

    def _check_workers(self) -> None:
        """Note each worker that died while the load ran, or that had to be killed, once."""
        for index, worker in enumerate(self._workers, 1):
            code = worker.poll()
            if code is None or worker.pid in self._accounted:
                continue
            self._accounted.add(worker.pid)
            if worker.pid in self._killed:
                self.note(f"worker {index} (pid {worker.pid}) did not quit when the load ended and was killed")
            elif worker.pid in self._signalled:
                continue
            elif code != 0 or (not self._stopping and self._master_alive() and not self._run_time_over()):
                started = self.record.started_at
                when = f" {time.time() - started:.0f}s into the load" if started else " before the load started"
                self.note(
                    f"worker {index} (pid {worker.pid}) ended with {_how(code)}{when}; the run went on with the "
                    f"master and the other workers; see {self.worker_log(index)}"
                )

    def _master_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _run_time_over(self) -> bool:
        started = self.record.started_at
        return started is not None and time.time() >= started + self.record.duration_s - 1.0

    def _finished(self) -> None:
        if self._proc is not None and self._proc.returncode is not None and self.record.exit_code is None:
            self.record.exit_code = self._proc.returncode
            self.record.finished_at = time.time()

    def _log_tail(self, path: Path | None = None, lines: int = 15) -> str:
        try:
            text = (path or self.log_file).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("  " + line for line in text.strip().splitlines()[-lines:])
