"""A service under tests/support/mini_supervisor.py, as a stack's process instance: started, described, stopped.

The child is a small HTTP server on a free loopback port. Everything started here is stopped by PID at
the end: the supervisor (SIGTERM, then SIGKILL), whichever child its pid file names, and the lingering
process the restart command may leave behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clients.health import problem, wait_healthy
from stackspec.match import ProcessMatch
from stackspec.restart import Restart
from stackspec.targets import ProcessInstance, SshHost, TcpHealth
from tests.support.helpers import ROOT, free_port

SUPERVISOR = ROOT / "tests" / "support" / "mini_supervisor.py"
_SERVER = (
    "import http.server, sys; "
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), http.server.BaseHTTPRequestHandler).serve_forever()"
)


@dataclass
class Supervised:
    """One supervisor and its child service."""

    name: str
    port: int
    control: Path
    pidfile: Path
    proc: subprocess.Popen[bytes]

    def child_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start_command(self, *extra: str) -> list[str]:
        """The restart command: ask this supervisor to start its child (a list of arguments)."""
        return [sys.executable, str(SUPERVISOR), "start", "--control", str(self.control), *extra]

    def instance(
        self, restart: Restart, host: SshHost | None = None, match: ProcessMatch | None = None
    ) -> ProcessInstance:
        """The service as a stack file describes it: found by its pid file, no argv, restarted by `restart`."""
        return ProcessInstance(
            name=self.name,
            match=match or ProcessMatch(pidfile=str(self.pidfile)),
            health=TcpHealth(tcp=f"127.0.0.1:{self.port}", timeout_s=0.5),
            restart=restart,
            host=host,
        )

    def wait_child(self, timeout_s: float = 15) -> int:
        """The PID of the child once it answers on its port."""
        wait_healthy(TcpHealth(tcp=f"127.0.0.1:{self.port}", timeout_s=0.5), timeout_s)
        pid = self.child_pid()
        assert pid is not None
        return pid

    def healthy(self) -> bool:
        return problem(TcpHealth(tcp=f"127.0.0.1:{self.port}", timeout_s=0.5)) is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for path in (self.pidfile, self.control / "lingerer.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(path.read_text().split()[0]), signal.SIGKILL)


def start_supervised(directory: Path, name: str, *, delay_s: float | None) -> Supervised:
    """A supervisor restarting its child `delay_s` after it dies (None: only when asked), child ready."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    control, pidfile = directory / f"{name}-control", directory / f"{name}.pid"
    when = ["--never"] if delay_s is None else ["--delay", str(delay_s)]
    argv = [sys.executable, str(SUPERVISOR), "run", "--control", str(control), "--pidfile", str(pidfile), *when]
    proc = subprocess.Popen([*argv, "--", sys.executable, "-c", _SERVER, str(port)], stdin=subprocess.DEVNULL)
    service = Supervised(name, port, control, pidfile, proc)
    try:
        service.wait_child()
    except BaseException:
        service.stop()
        raise
    return service


@contextlib.contextmanager
def supervised(directory: Path, name: str = "web-1", *, delay_s: float | None) -> Iterator[Supervised]:
    service = start_supervised(directory, name, delay_s=delay_s)
    try:
        yield service
    finally:
        service.stop()
