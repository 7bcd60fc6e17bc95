"""Small helpers shared by tests: free loopback ports and running chaos.py as users do."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

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
