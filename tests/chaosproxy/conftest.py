"""Fixtures for the chaosproxy tests: the server as a subprocess, and threaded upstream servers on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.helpers import ROOT, ServiceStartError, first_line


def pattern(size: int) -> bytes:
    """`size` deterministic, non-repeating-looking bytes (so reordering or loss shows up in a comparison)."""
    block = bytes(range(251))  # a prime length: no alignment with power-of-two chunk sizes
    return (block * (size // len(block) + 1))[:size]


class _Echo(socketserver.BaseRequestHandler):
    """Echoes everything; after the client's end of stream, closes (so half-close can be observed)."""

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


class _Source(socketserver.StreamRequestHandler):
    """Reads one line `N`, sends N pattern bytes, then closes the connection."""

    def handle(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            size = int(self.rfile.readline().strip())
            self.wfile.write(pattern(size))
            self.wfile.flush()


def _serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    """Address of an echo server."""
    yield from _serve(_Echo)


@pytest.fixture(scope="module")
def source() -> Iterator[str]:
    """Address of a server that answers `N\\n` with N bytes of `pattern(N)`, then closes."""
    yield from _serve(_Source)


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


@pytest.fixture(scope="module")
def chaosproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the one chaosproxy server this module talks to."""
    log = tmp_path_factory.mktemp("chaosproxy") / "server.log"
    proc, url = start_server(log=log)
    try:
        yield url
    finally:
        code = stop_server(proc)
    assert code == 0, f"chaosproxy exited {code} on SIGTERM\n{log.read_text(encoding='utf-8')}"


def connect(address: str, timeout: float = 5.0) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)
