"""A real Prometheus for tests: Debian's /usr/bin/prometheus on a free loopback port, scraping small real targets.

`MetricsTarget` is a tiny HTTP server (a thread in the test process) that serves Prometheus text format
whose values a test sets; `start_prometheus` writes a prometheus.yml scraping the given targets every
second, starts the server with its storage under a temporary directory and waits for `/-/ready`;
`BearerGate` is a small proxy that lets a request through to Prometheus only with the right bearer token
(and remembers what Authorization headers it saw). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.helpers import free_port, popen_alive, require_programs, wait_ready

PROMETHEUS = "/usr/bin/prometheus"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require_prometheus() -> None:
    """Skip when Prometheus is not installed (fail under CI=true)."""
    require_programs(PROMETHEUS if shutil.which(PROMETHEUS) else "prometheus")


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class MetricsTarget:
    """Serves `GET /metrics` in Prometheus text format; `set` changes a sample, `drop` removes it."""

    def __init__(self) -> None:
        self._lines: dict[str, float] = {}
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = target.text().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, series: str, value: float) -> None:
        """`series` as in the text format, e.g. 'queue_depth' or 'up_state{role="leader"}'."""
        with self._lock:
            self._lines[series] = value

    def drop(self, series: str) -> None:
        with self._lock:
            self._lines.pop(series, None)

    def text(self) -> str:
        with self._lock:
            return "".join(f"{name} {value!r}\n" for name, value in self._lines.items())

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def query(url: str, promql: str, timeout_s: float = 2.0) -> dict[str, object]:
    """Prometheus's decoded answer to an instant query (for waiting on scrapes; not the code under test)."""
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with _DIRECT.open(full, timeout=timeout_s) as resp:
            answer: dict[str, object] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            answer = json.loads(exc.read())
    return answer


@dataclass
class Prometheus:
    """A running Prometheus started by `start_prometheus`."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_value(self, promql: str, value: float, timeout_s: float = 15.0) -> None:
        """Wait until `promql` returns exactly one series with `value` (the target has been scraped since)."""

        def answer() -> str | None:
            data = query(self.url, promql).get("data")
            result = data.get("result") if isinstance(data, dict) else None
            if isinstance(result, list) and len(result) == 1 and float(result[0]["value"][1]) == value:
                return None
            return f"{promql} gave {result}"

        wait_ready(
            f"Prometheus value of {promql}", answer, alive=popen_alive(self.proc), log=self.log, timeout_s=timeout_s
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_prometheus(tmp: Path, targets: list[str], scrape_interval: str = "1s") -> Prometheus:
    """Prometheus on a free loopback port scraping `targets` (host:port, path /metrics) every `scrape_interval`."""
    require_prometheus()
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "prometheus.yml"
    quoted = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        f"  evaluation_interval: {scrape_interval}\n"
        "scrape_configs:\n"
        "  - job_name: test\n"
        f"    static_configs: [{{targets: [{quoted}]}}]\n"
    )
    port = free_port()
    log = tmp / "prometheus.log"
    argv = [
        shutil.which(PROMETHEUS) or "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    server = Prometheus(proc, port, log)

    def ready() -> str | None:
        try:
            with _DIRECT.open(f"{server.url}/-/ready", timeout=1.0) as resp:
                return None if resp.status == 200 else f"/-/ready answered {resp.status}"
        except (OSError, ValueError) as exc:
            return f"/-/ready: {exc}"

    try:
        wait_ready("prometheus", ready, alive=popen_alive(proc), log=log, timeout_s=60)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class BearerGate:
    """A proxy in front of Prometheus that answers 401 unless `Authorization: Bearer <token>` is sent."""

    upstream: str
    token: str
    seen: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("Authorization")
                gate.seen.append(auth)
                if auth != f"Bearer {gate.token}":
                    self._answer(401, b'{"status":"error","errorType":"unauthorized","error":"no valid token"}')
                    return
                try:
                    with _DIRECT.open(gate.upstream + self.path, timeout=5) as resp:
                        self._answer(resp.status, resp.read())
                except urllib.error.HTTPError as exc:
                    with exc:
                        self._answer(exc.code, exc.read())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_seconds(seconds: float) -> None:
    """Sleep in a bounded way (one place for the tests' waits on real time)."""
    time.sleep(max(0.0, min(seconds, 30.0)))
