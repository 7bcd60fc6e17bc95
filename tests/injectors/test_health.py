"""Health checks against real servers: HTTP, TCP, redis-server PING, ZooKeeper srvr."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from injectors.health import problem, split_hostport, wait_healthy
from injectors.targets import HttpHealth, RedisHealth, TcpHealth, ZooKeeperHealth
from tests.helpers import free_port


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
