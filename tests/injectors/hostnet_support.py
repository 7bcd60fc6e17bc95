"""What the host network fault tests share: a loopback TCP server, a throwaway stack, and the clean-up of
every nftables table a test made (tests/injectors/test_host_network*.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.nft import LocalShell, Nft
from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan, FaultSpec, Injector
from injectors.selection import Selection
from stackspec.targets import ProcessInstance, ProcessTarget, SshHost, StackDescription
from tests.support.helpers import free_port

RUN_ID = f"hostnet-test-{os.getpid()}"


def require_nft() -> None:
    if shutil.which("nft") is None and not Path("/usr/sbin/nft").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("nftables is not installed; bash scripts/setup.sh installs it (scripts/debian-packages.txt)")
        pytest.skip("nftables is not installed (bash scripts/setup.sh)")
    if os.geteuid() != 0:
        pytest.skip("nftables needs root (CAP_NET_ADMIN)")


@pytest.fixture
def our_tables_deleted() -> Iterator[None]:
    require_nft()
    yield
    nft = Nft(LocalShell())
    for table in nft.tables():
        if table.startswith(f"chaos_{RUN_ID.replace('-', '_')}_"):
            nft.delete(table)


class Server:
    """A TCP server on a free loopback port that sends `chunk` forever to each client (bounded by the test)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, name="hostnet-server", daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._send, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket) -> None:
        chunk = b"x" * 65536
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            while not self.stop.is_set():
                conn.sendall(chunk)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


def connects(port: int, timeout_s: float = 0.5) -> str:
    """'ok', 'timeout' or 'refused' for a TCP connection to 127.0.0.1:port that reads a first byte."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
            conn.recv(1)
    except TimeoutError:
        return "timeout"
    except (ConnectionRefusedError, ConnectionResetError):
        return "refused"
    return "ok"


def read_for(conn: socket.socket, seconds: float) -> int:
    """Bytes read from an open connection in `seconds`."""
    total, deadline = 0, time.monotonic() + seconds
    conn.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            data = conn.recv(262144)
        except TimeoutError:
            continue
        if not data:
            break
        total += len(data)
    return total


def received_in(port: int, seconds: float) -> int:
    """Bytes read from 127.0.0.1:port in `seconds`, on a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        return read_for(conn, seconds)


def stack_with(tmp: Path, **hosts: SshHost | None) -> LiveStack:
    instances = [ProcessInstance(name=name, argv=["true"], host=host) for name, host in hosts.items()]
    desc = StackDescription(name="hostnet", targets={"app": ProcessTarget(instances=instances)}, market_hours=None)
    return LiveStack(desc, tmp / "state.json")


def ctx_for(stack: LiveStack) -> EngineContext:
    return EngineContext(RUN_ID, stack, seed=1, bus=EventBus())


def plan_for(injector: Injector[FaultSpec], stack: LiveStack, select: Selection | None = None) -> FaultPlan:
    refs = injector.resolve("app", select, ctx_for(stack))
    return FaultPlan(kind=injector.kind, target="app", params=injector.spec.model_dump(), select=select, targets=refs)
