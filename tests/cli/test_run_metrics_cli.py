"""`chaos.py run --metrics-listen`: the runner's own metrics scraped from a real run while it runs."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from clients.procs import is_running
from engine.errors import ExitCode
from engine.journal import load_journal
from tests.support.cli_world import OK_STEADY, only_journal, write_experiment
from tests.support.helpers import ROOT, chaos
from tests.support.scrape import Series, scrape, value

pytestmark = [pytest.mark.slow]
FAULT = {"index": "1", "kind": "process.kill", "target": "svc"}


def _metrics_url(run: subprocess.Popen[str], timeout_s: float = 30) -> str:
    """The address the run printed as bound (the first lines it prints)."""
    assert run.stdout is not None
    deadline = time.monotonic() + timeout_s
    for _ in range(50):
        line = run.stdout.readline()
        if (found := re.search(r"run metrics: (http://\S+/metrics)", line)) is not None:
            return found.group(1)
        if not line or time.monotonic() > deadline:
            break
    raise AssertionError("the run printed no metrics address")


def _scrape_until_done(run: subprocess.Popen[str], url: str, timeout_s: float = 60) -> list[Series]:
    """Scrape every 0.1 s for as long as the endpoint answers (it goes away with the run)."""
    seen: list[Series] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and run.poll() is None:
        try:
            seen.append(scrape(url, timeout_s=1.0))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if seen:
                break  # served until the run ended
        time.sleep(0.1)
    return seen


def test_a_scraper_sees_phases_the_fault_window_and_the_probes(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY)
    argv = [sys.executable, str(ROOT / "chaos.py"), "run", str(experiment), "--runs-dir", str(runs), "--quiet"]
    run = subprocess.Popen(
        [*argv, "--metrics-listen", "127.0.0.1:0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = _metrics_url(run)
        seen = _scrape_until_done(run, url)
        rest, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == ExitCode.PASSED, rest
    active = [value(s, "chaos_fault_active", **FAULT) for s in seen]
    assert 1 in active, active
    first, last = active.index(1), len(active) - 1 - active[::-1].index(1)
    assert all(a == 0 for a in active[:first]) and active[last + 1 :] and all(a == 0 for a in active[last + 1 :])
    in_window = seen[first : last + 1]
    assert all(value(s, "chaos_run_phase", phase="faults") == 1 for s in in_window)
    assert all(value(s, "chaos_faults_injected_total") == 1 for s in seen[first:])
    order = list(dict.fromkeys(p for p in map(_current_phase, seen) if p is not None))
    assert [p for p in order if p in ("baseline", "faults", "recovery")] == ["baseline", "faults", "recovery"], order
    assert any(value(s, "chaos_steady_state_ok", probe="web health") == 1 for s in seen)
    assert any(value(s, "chaos_steady_state_ok", probe="errors") == 1 for s in seen)
    journal = load_journal(only_journal(runs))
    info = {"run_id": journal.run_id, "experiment": "CLI exit code test"}
    assert all(value(s, "chaos_run_info", **info) == 1 for s in seen[first:])
    assert journal.metrics_listen is not None and url == f"http://{journal.metrics_listen}/metrics"
    host, port = journal.metrics_listen.rsplit(":", 1)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the scrapes' TIME_WAIT is no listener
        sock.bind((host, int(port)))  # the port is free again: the endpoint went away with the run


def _current_phase(series: Series) -> str | None:
    current = [dict(labels)["phase"] for (name, labels), v in series.items() if name == "chaos_run_phase" and v == 1]
    assert len(current) <= 1, current  # one phase at a time
    return current[0] if current else None


def test_a_port_in_use_refuses_the_run_before_anything_is_injected(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    svc = world["svc"]
    assert isinstance(svc, list)
    pids = [inst.pid for inst in svc]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = chaos(
            "run",
            str(write_experiment(world, steady=OK_STEADY)),
            "--runs-dir",
            str(runs),
            "--metrics-listen",
            f"127.0.0.1:{port}",
        )
    assert result.returncode == ExitCode.CANNOT_RUN, result.stdout + result.stderr
    assert f"--metrics-listen 127.0.0.1:{port}: cannot listen there" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not list(runs.glob("*/journal.json"))  # no run started
    assert all(is_running(inst) for inst in svc) and [inst.pid for inst in svc] == pids


@pytest.mark.parametrize("bad", ["127.0.0.1", "127.0.0.1:99999", "999.1.1.1:80", "::1:80", ":80"])
def test_a_bad_listen_address_is_refused_as_an_argument(tmp_path: Path, bad: str) -> None:
    experiment = tmp_path / "exp.yaml"
    experiment.write_text("version: 1\n")
    result = chaos("run", str(experiment), "--metrics-listen", bad)
    assert result.returncode == ExitCode.INVALID_INPUT, result.stdout + result.stderr
    assert "argument --metrics-listen" in result.stderr and "Traceback" not in result.stderr


def test_a_non_loopback_address_is_warned_about(tmp_path: Path) -> None:
    experiment = tmp_path / "exp.yaml"
    experiment.write_text("version: 1\n")  # invalid: the run stops at validation, nothing is bound
    result = chaos("run", str(experiment), "--metrics-listen", "10.0.0.5:9464")
    assert result.returncode == ExitCode.INVALID_INPUT, result.stdout + result.stderr
    assert "warning: --metrics-listen 10.0.0.5 is not loopback" in result.stderr
    quiet = chaos("run", str(experiment), "--metrics-listen", "[::1]:0")
    assert "warning" not in quiet.stderr
