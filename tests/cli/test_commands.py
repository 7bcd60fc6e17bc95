"""The other commands: report, schema, validate output, stack up/status/down through chaos.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clients.toxiproxy import ToxiproxyClient
from engine.errors import ExitCode
from tests.engine.fakes import run_fake
from tests.support.helpers import ROOT, chaos, listening_url


def test_report_renders_again_from_a_journal(tmp_path: Path) -> None:
    run_fake(tmp_path, "- {at: 10s, duration: 8s, kind: fake.break, target: matcher}\n")
    journal = tmp_path / "run" / "journal.json"
    out = tmp_path / "again"
    result = chaos("report", str(journal), "--out", str(out))
    assert result.returncode == ExitCode.PASSED, result.stderr
    assert (out / "report.html").read_text().count("<svg") >= 3
    assert (out / "junit.xml").exists()


def test_report_refuses_what_is_not_a_journal(tmp_path: Path) -> None:
    bad = tmp_path / "journal.json"
    bad.write_text('{"schema_version": 99}')
    result = chaos("report", str(bad))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert "schema_version 99" in result.stderr


def test_schema_and_validate_the_shipped_experiments() -> None:
    schema = json.loads(chaos("schema").stdout)
    assert "process.kill" in schema["$defs"]["FaultStep"]["properties"]["kind"]["enum"]
    files = [str(p) for p in sorted((ROOT / "experiments").glob("*.yaml"))]
    result = chaos("validate", *files)
    assert result.returncode == ExitCode.PASSED, result.stderr
    assert "+   15s  #1 process.kill on matcher {'role': 'leader'}" in result.stdout


def test_dry_run_prints_the_timeline_and_starts_nothing(tmp_path: Path) -> None:
    experiment = str(ROOT / "experiments" / "matcher-leader-kill.yaml")
    result = chaos("run", experiment, "--dry-run", "--stack-up", "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == ExitCode.PASSED
    assert "dry run" in result.stdout and "process.kill" in result.stdout
    assert "a fresh reference stack would be started" in result.stdout
    assert not (tmp_path / "runs").exists()
    # Without --stack-up a dry run resolves targets on the live stack: there is none here.
    result = chaos("run", experiment, "--dry-run", "--stack-dir", str(tmp_path / "none"), "--runs-dir", str(tmp_path))
    assert result.returncode == ExitCode.CANNOT_RUN and "no reference stack is running" in result.stderr


def test_run_without_a_live_reference_stack_says_how_to_start_one(tmp_path: Path) -> None:
    result = chaos(
        "run",
        str(ROOT / "experiments" / "matcher-leader-kill.yaml"),
        "--stack-dir",
        str(tmp_path / "nothing"),
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert result.returncode == ExitCode.CANNOT_RUN
    assert "chaos.py stack up --profile ha" in result.stderr


@pytest.mark.slow
@pytest.mark.infra
def test_stack_up_status_down(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    up = chaos("stack", "up", "--dir", str(stack))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        status = chaos("stack", "status", "--dir", str(stack), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        answer = json.loads(status.stdout)
        assert answer["healthy"] is True
        rows = answer["instances"]
        processes = {"redis", "zookeeper", "toxiproxy", "matcher", "gateway"}
        links = {"matcher->redis", "matcher->zookeeper", "gateway->redis", "gateway->zookeeper", "gateway->matcher"}
        assert {r["target"] for r in rows} == processes | links
        assert all(r["healthy"] for r in rows)
        assert [r["role"] for r in rows if r["target"] == "matcher"].count("leader") == 1
    finally:
        down = chaos("stack", "down", "--dir", str(stack))
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (stack / "state.json").exists()
    assert chaos("stack", "status", "--dir", str(stack)).returncode != 0


def test_proxy_serve_answers_the_toxiproxy_api_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "p1", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}]))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "chaos.py"), "proxy", "serve", "--port", "0", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        client = ToxiproxyClient(listening_url(proc))
        assert client.version() and list(client.proxies()) == ["p1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_proxy_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "proxies.json"
    config.write_text('[{"name": "no-upstream"}]')
    result = chaos("proxy", "serve", "--port", "0", "--config", str(config))
    assert result.returncode == ExitCode.INVALID_INPUT and "upstream" in result.stderr
