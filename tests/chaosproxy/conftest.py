"""Fixtures for the chaosproxy tests: the server as a subprocess, and threaded upstream servers on loopback."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.chaosproxy.support import pattern, start_server, stop_server


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
