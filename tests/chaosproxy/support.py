"""Helpers the chaosproxy tests share: the server as a subprocess, a test pattern, a plain TCP connection."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import ROOT, ServiceStartError, first_line


def pattern(size: int) -> bytes:
    """`size` deterministic, non-repeating-looking bytes (so reordering or loss shows up in a comparison)."""
    block = bytes(range(251))  # a prime length: no alignment with power-of-two chunk sizes
    return (block * (size // len(block) + 1))[:size]


def start_server(*extra: str, log: Path) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m chaosproxy serve` on a free loopback port; returns the process and the API URL.

    stderr (the server's log) goes to `log` so a chatty server can never block on a full pipe.
    """
    with log.open("a", encoding="utf-8") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chaosproxy", "serve", "--host", "127.0.0.1", "--port", "0", *extra],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        first = first_line(proc, "chaosproxy").strip()
    except ServiceStartError:
        first = "(nothing)"
    if not first.startswith("listening on 127.0.0.1:"):
        stop_server(proc)
        pytest.fail(f"chaosproxy did not start: {first!r}\n{log.read_text(encoding='utf-8')}")
    return proc, f"http://{first.rsplit(' ', 1)[-1]}"


def stop_server(proc: subprocess.Popen[str]) -> int:
    """SIGTERM the server we started (by its pid) and wait for it; SIGKILL only if it does not stop."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def connect(address: str, timeout: float = 5.0) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)
