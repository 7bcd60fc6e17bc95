"""Small helpers shared by tests: free loopback ports, running chaos.py as users do, and service start-up."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# How long a server the tests start may take to answer. Generous on purpose: a first start on a new,
# loaded machine (cold caches, first JVM or podman start after installation) is many times slower
# than a warm one. Readiness is always the service's own answer, and an exit is reported at once.
READY_TIMEOUT_S = 90.0


class ServiceStartError(AssertionError):
    """A server a test started exited or did not answer in time; the message carries its log."""


def log_tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_ready(
    what: str,
    answer: Callable[[], str | None],
    *,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
    timeout_s: float = READY_TIMEOUT_S,
    interval_s: float = 0.05,
) -> float:
    """Wait until `answer()` — the service's own answer: None once ready, else why not — says ready.

    Raises ServiceStartError at once when `alive()` says the process is gone, and after `timeout_s` with
    the last reason; both carry the tail of `log`. Returns the seconds waited.
    """
    started = time.monotonic()
    while True:
        reason = answer()
        if reason is None:
            return time.monotonic() - started
        if alive is not None and not alive():
            raise ServiceStartError(f"{what} exited during start-up ({reason}); its log {log}:\n{log_tail(log)}")
        if time.monotonic() - started >= timeout_s:
            raise ServiceStartError(
                f"{what} did not answer within {timeout_s:.0f} s: {reason}; its log {log}:\n{log_tail(log)}"
            )
        time.sleep(interval_s)


def popen_alive(proc: subprocess.Popen[Any]) -> Callable[[], bool]:
    """`alive` for wait_ready: True while our child has not exited."""
    return lambda: proc.poll() is None


def first_line(proc: subprocess.Popen[str], what: str, timeout_s: float = READY_TIMEOUT_S) -> str:
    """The first line `proc` prints on stdout, waiting at most `timeout_s`; '' when it exits first."""
    stream: IO[str] | None = proc.stdout
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], timeout_s)
    if not ready:
        raise ServiceStartError(f"{what} (pid {proc.pid}) printed nothing within {timeout_s:.0f} s")
    return stream.readline()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chaos(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python chaos.py ARGS` from the repository root and capture its output."""
    return subprocess.run(
        [sys.executable, str(ROOT / "chaos.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def require_programs(*names: str) -> None:
    """Skip when a server program is missing here — but fail under CI, where setup must have installed it."""
    for name in names:
        if shutil.which(name) is None:
            message = f"{name} is not installed here"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)


def listening_url(proc: subprocess.Popen[str]) -> str:
    """The API URL from the first line a starting Toxiproxy-API server prints: `listening on HOST:PORT`."""
    first = first_line(proc, "the Toxiproxy-API server").strip()
    assert first.startswith("listening on 127.0.0.1:"), first
    return f"http://{first.rsplit(' ', 1)[1]}"
