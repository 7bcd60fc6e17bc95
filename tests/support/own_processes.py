"""Real processes the stack check and discover tests start: a sleeper to find by its command line, a listener.

Every process is started by the test, killed by its PID and reaped at the end; listeners bind 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

from tests.support.helpers import free_port, popen_alive, wait_ready


def _accepts(port: int) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return None
    except OSError as exc:
        return str(exc)


class Started:
    """The processes one test started; `stop_all` kills (SIGKILL) and reaps each, by its PID."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def sleeper(self, marker: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
        """`python -c 'sleep' MARKER`: a process found by the unique MARKER on its command line."""
        marker = marker or f"chaos-check-{uuid.uuid4().hex[:10]}"
        proc = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)", marker], stdin=subprocess.DEVNULL
        )
        self.procs.append(proc)
        return proc, marker

    def http_server(self, port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
        """`python -m http.server PORT --bind 127.0.0.1`, ready once it accepts a connection."""
        port = port or free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
        )
        self.procs.append(proc)
        wait_ready(f"http.server on {port}", lambda: _accepts(port), alive=popen_alive(proc))
        return proc, port

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self.procs.clear()


@contextlib.contextmanager
def started_processes() -> Iterator[Started]:
    started = Started()
    try:
        yield started
    finally:
        started.stop_all()


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid
