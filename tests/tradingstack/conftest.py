"""Fixtures shared by the reference stack's tests."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.health import problem
from stackspec.targets import RedisHealth
from tests.support.helpers import free_port, popen_alive, require_programs, wait_ready


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A private redis-server on a free loopback port: ("127.0.0.1:P", pid)."""
    require_programs("redis-server")
    binary = shutil.which("redis-server") or "redis-server"
    port = free_port()
    data: Path = tmp_path_factory.mktemp("redis")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    log = data / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*argv, "--dir", str(data)], stdout=out, stderr=subprocess.STDOUT)
    try:
        health = RedisHealth(redis=f"127.0.0.1:{port}")
        wait_ready("redis-server", lambda: problem(health), alive=popen_alive(proc), log=log)
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=10)
