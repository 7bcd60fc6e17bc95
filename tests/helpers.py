"""Small helpers shared by tests: free loopback ports and running chaos.py as users do."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    assert first.startswith("listening on 127.0.0.1:"), first
    return f"http://{first.rsplit(' ', 1)[1]}"
