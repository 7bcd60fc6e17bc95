"""A small system of third-party parts that the framework did not start: Debian nginx in front of two
gunicorn backends serving a PyPI web app (pypiserver), each backend under the tests' supervisor, and a
Debian redis-server — all plain processes on free loopback ports, never through `chaos.py stack up`.

Everything started here is stopped by PID at the end (the supervisors stop their children).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clients.health import wait_healthy
from stackspec.targets import HttpHealth, TcpHealth
from tests.support.helpers import ROOT, free_port

SUPERVISOR = ROOT / "tests" / "support" / "mini_supervisor.py"
NGINX = "/usr/sbin/nginx"
REDIS = "/usr/bin/redis-server"

_NGINX_CONF = """\
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    upstream backends {{
        server 127.0.0.1:{backend_1} max_fails=1 fail_timeout=2s;
        server 127.0.0.1:{backend_2} max_fails=1 fail_timeout=2s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backends;
            proxy_buffering off;
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502;
        }}
    }}
}}
"""


def require_parts() -> None:
    """Skip (fail on CI) where the Debian or PyPI parts are not installed."""
    missing = [p for p in (NGINX, REDIS) if not Path(p).exists()]
    if shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None:
        missing.append("gunicorn (the test extra)")
    if missing:
        message = f"not installed: {', '.join(missing)}; bash scripts/setup.sh test installs them"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Backend:
    """One gunicorn backend under its own supervisor."""

    name: str
    port: int
    control: Path
    pidfile: Path

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(self.pidfile.read_text().split()[0])
        return None

    def start_command(self) -> list[str]:
        """The restart command an SRE would write: ask the supervisor to start it."""
        return [sys.executable, str(SUPERVISOR), "start", "--control", str(self.control)]


@dataclass
class OwnSystem:
    """The running system, as its operator knows it."""

    root: Path
    port: int
    redis_port: int
    backends: list[Backend]
    pids: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def _backend(root: Path, name: str, restart_delay_s: float | None, procs: list[subprocess.Popen[bytes]]) -> Backend:
    port = free_port()
    packages = root / name / "packages"
    packages.mkdir(parents=True)
    backend = Backend(name, port, root / name / "control", root / name / "gunicorn.pid")
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    app = f"pypiserver:app(roots=[{str(packages)!r}])"
    when = ["--never"] if restart_delay_s is None else ["--delay", str(restart_delay_s)]
    argv = [sys.executable, str(SUPERVISOR), "run", "--control", str(backend.control), "--pidfile"]
    argv += [str(backend.pidfile), *when, "--", gunicorn, "-b", f"127.0.0.1:{port}", "-w", "1", app]
    procs.append(_spawn(argv, root / name / "supervisor.log"))
    return backend


@contextlib.contextmanager
def own_system(root: Path) -> Iterator[OwnSystem]:
    """Start the system, wait until every part answers, stop it all by PID afterwards."""
    require_parts()
    root.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis_port = free_port()
        redis_argv = [REDIS, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        procs.append(_spawn(redis_argv, root / "redis.log"))
        # backend-1's supervisor restarts only when asked (the restart command), backend-2's by itself.
        backends = [_backend(root, "backend-1", None, procs), _backend(root, "backend-2", 1.0, procs)]
        port = free_port()
        conf = root / "nginx.conf"
        ports = {"backend_1": backends[0].port, "backend_2": backends[1].port}
        conf.write_text(_NGINX_CONF.format(prefix=root, port=port, **ports))
        procs.append(_spawn([NGINX, "-p", str(root), "-c", str(conf), "-g", "daemon off;"], root / "nginx.out"))
        system = OwnSystem(root, port, redis_port, backends, [p.pid for p in procs])
        urls = [f"http://127.0.0.1:{b.port}/" for b in backends] + [system.url]
        checks: list[HttpHealth | TcpHealth] = [HttpHealth(http=url, timeout_s=1.0) for url in urls]
        checks.append(TcpHealth(tcp=f"127.0.0.1:{redis_port}", timeout_s=1.0))
        for check in checks:
            wait_healthy(check, 30.0)  # raises with the last reason
        yield system
    finally:
        _stop_all(procs)


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
