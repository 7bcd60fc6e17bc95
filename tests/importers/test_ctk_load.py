"""The light load for imported experiments (loadgen/http_get.py) under real Locust, and the CLI's option checks."""

from __future__ import annotations

import argparse
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.import_commands import add_import_parser, options_from_args
from tests.importers.ctk_support import document, refused

ROOT = Path(__file__).resolve().parents[2]


class _Health(http.server.BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self) -> None:
        _Health.paths.append(self.path)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_the_light_load_requests_the_host_url_with_its_path(health_server: str) -> None:
    _Health.paths.clear()
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadgen" / "http_get.py"),
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "--run-time",
        "3s",
        "--host",
        f"{health_server}/health",
        "--only-summary",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert _Health.paths and set(_Health.paths) == {"/health"}
    assert "GET /health" in result.stdout + result.stderr


def test_request_names() -> None:
    # In a process of its own: importing a locustfile imports locust, which monkey-patches the importer (gevent).
    script = (
        "from loadgen.http_get import request_name as n; "
        "print(n('http://127.0.0.1:8080/health')); print(n('http://127.0.0.1:8080'))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == ["GET /health", "GET /"], done.stderr


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chaos.py")
    add_import_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["import", "ctk", "x.json", *argv])


def test_options_from_the_command_line() -> None:
    options = options_from_args(
        _parse(
            "--stack",
            "reference:ha",
            "--var",
            "port=8080",
            "--var",
            "name=a=b",
            "--target",
            "31337=matcher/matcher-1",
            "--endpoint",
            "http://h:1/=gateway",
            "--duration",
            "1m30s",
            "--method-probes",
            "judge",
            "--subsumed-rollback",
            "r",
        )
    )
    assert options.stack == "reference:ha" and options.duration_s == 90.0
    assert options.variables == {"port": 8080, "name": "a=b"}
    assert options.targets == {"31337": "matcher/matcher-1"} and options.endpoints == {"http://h:1/": "gateway"}
    assert options.method_probes == "judge" and options.subsumed_rollbacks == frozenset({"r"})
    assert (options.warmup_s, options.baseline_s, options.recovery_s, options.min_fault_s) == (5.0, 10.0, 20.0, 10.0)


@pytest.mark.parametrize(
    "argv", [["--duration", "5x"], ["--users", "0"], ["--var", "novalue"], ["--method-probes", "x"]]
)
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _parse(*argv)
    assert caught.value.code == 2


def test_options_that_leave_no_baseline_or_recovery_are_refused(tmp_path: Path) -> None:
    problems = refused(tmp_path, document(), baseline_s=1.0, recovery_s=2.0)
    assert any("option: baseline must be at least 2s" in p for p in problems)
    assert any("option: recovery (2s) must be at least stable_for (3s)" in p for p in problems)
