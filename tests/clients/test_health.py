"""Health checks against real servers: HTTP, TCP, redis-server PING, ZooKeeper srvr."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from clients.health import problem, role_problem, split_hostport, wait_healthy, wait_stable
from stackspec.targets import HttpHealth, RedisHealth, TcpHealth, ZooKeeperHealth
from tests.support.helpers import free_port


@contextlib.contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(timeout=10)


def test_split_hostport() -> None:
    assert split_hostport("127.0.0.1:6379") == ("127.0.0.1", 6379)
    with pytest.raises(ValueError):
        split_hostport("localhost")


def test_http_status_and_refusal() -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert problem(HttpHealth(http=f"{base}/ok")) is None
        assert problem(HttpHealth(http=f"{base}/bad")) == f"GET {base}/bad answered 503"
        assert problem(HttpHealth(http=f"{base}/bad", status=503)) is None
        assert problem(TcpHealth(tcp=f"127.0.0.1:{server.server_port}")) is None
    finally:
        server.shutdown()
    closed = free_port()
    assert "ConnectionRefusedError" in (problem(TcpHealth(tcp=f"127.0.0.1:{closed}")) or "")
    with pytest.raises(TimeoutError, match=r"not healthy after 0\.3s"):
        wait_healthy(HttpHealth(http=f"http://127.0.0.1:{closed}/"), timeout_s=0.3)


@pytest.mark.infra
def test_redis_ping_and_frozen_server_times_out(tmp_path: Path) -> None:
    port = free_port()
    argv = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    with process(argv, tmp_path / "redis.log") as proc:
        check = RedisHealth(redis=f"127.0.0.1:{port}", timeout_s=0.5)
        wait_healthy(check, 10)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            assert "timed out" in (problem(check) or "")
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert problem(check) is None


@pytest.mark.infra
@pytest.mark.slow
def test_zookeeper_srvr_mode(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "data").mkdir()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(
        f"tickTime=500\ndataDir={tmp_path / 'data'}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "4lw.commands.whitelist=*\nadmin.enableServer=false\n"
    )
    argv = [
        "java",
        "-Xmx128m",
        "-cp",
        "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar",
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        str(cfg),
    ]
    check = ZooKeeperHealth(zookeeper=f"127.0.0.1:{port}")
    assert problem(check) is not None
    with process(argv, tmp_path / "zk.log"):
        wait_healthy(check, 30)
        assert problem(check) is None


def looks(*answers: tuple[str | None, str | None]) -> Callable[[], tuple[str | None, str | None]]:
    """An `observe` for wait_stable that gives `answers` in turn, then repeats the last one."""
    queue = list(answers)
    return lambda: queue.pop(0) if len(queue) > 1 else queue[0]


def test_wait_stable_needs_the_same_good_state_for_the_whole_window() -> None:
    # One good look, a bad one, a role change: each restarts the window; then the state holds.
    observe = looks((None, "follower"), ("503", None), (None, "candidate"), (None, "follower"))
    started = time.monotonic()
    state, waited = wait_stable(observe, timeout_s=5, window_s=0.3, poll_s=0.05, looks=3)
    assert state == "follower" and waited >= 0.3 + 3 * 0.05
    assert time.monotonic() - started < 2


def test_wait_stable_gives_up_at_its_bound_with_the_last_reason() -> None:
    with pytest.raises(TimeoutError, match=r"not stable for 0\.2s after 0\.5s: GET .* answered 503"):
        wait_stable(looks((None, "follower"), ("GET /health answered 503", None)), 0.5, window_s=0.2, poll_s=0.05)
    flapping = iter(["leader", "follower"] * 100)
    with pytest.raises(TimeoutError, match="changed from"):
        wait_stable(lambda: (None, next(flapping)), 0.5, window_s=0.2, poll_s=0.05)


@pytest.mark.parametrize(
    ("role", "settled"),
    [("leader", True), ("follower", True), ("primary", True), ("candidate", False), ("looking", False), (None, False)],
)
def test_only_leader_and_follower_are_settled_election_roles(role: str | None, settled: bool) -> None:
    assert (role_problem(role) is None) is settled
