"""`chaos.py stack check|discover|status FILE` as users run them: real processes, exit codes 0/1/2/4, --json."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import ExitCode
from engine.stack import read_description
from tests.support.helpers import chaos, free_port
from tests.support.own_processes import Started, started_processes


@pytest.fixture
def started() -> Iterator[Started]:
    with started_processes() as processes:
        yield processes


def stack_file(tmp_path: Path, marker: str, health_port: int) -> Path:
    path = tmp_path / "own.yaml"
    path.write_text(
        "name: own\n"
        "market_hours: null\n"
        "targets:\n"
        "  svc:\n"
        "    instances:\n"
        "      - name: svc-1\n"
        f"        match: {{cmdline: {marker}}}\n"
        f"        health: {{tcp: '127.0.0.1:{health_port}'}}\n"
        "        argv: [sleep, '1']\n"
    )
    return path


def test_check_passes_exit_0_and_fails_exit_4_listing_every_problem(started: Started, tmp_path: Path) -> None:
    proc, marker = started.sleeper()
    _, port = started.http_server()
    good = stack_file(tmp_path, marker, port)
    result = chaos("stack", "check", str(good))
    assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
    assert re.search(
        rf"^svc +svc-1 +process +this host +found: pid {proc.pid} \(by match\); health: ok", result.stdout, re.M
    )
    assert "netem: " in result.stdout and result.stdout.rstrip().endswith("ok: every target was found and answers")

    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace(marker, "no-such-process-marker-77").replace(str(port), str(free_port())))
    result = chaos("stack", "check", str(bad))
    assert result.returncode == ExitCode.CANNOT_RUN
    assert "2 problem(s):" in result.stdout
    assert "  - svc-1: no process on this host matches cmdline ~ 'no-such-process-marker-77'" in result.stdout
    assert "  - svc-1: health check failing: ConnectionRefusedError" in result.stdout


def test_check_json_has_the_documented_shape(started: Started, tmp_path: Path) -> None:
    proc, marker = started.sleeper()
    _, port = started.http_server()
    result = chaos("stack", "check", str(stack_file(tmp_path, marker, port)), "--json", "--parallel", "2")
    assert result.returncode == ExitCode.PASSED
    answer = json.loads(result.stdout)
    assert set(answer) == {"file", "stack", "ok", "problems", "hosts", "targets"}
    assert answer["ok"] is True and answer["problems"] == [] and answer["stack"] == "own"
    assert set(answer["hosts"][0]) == {"host", "ssh", "nft", "tc", "netem", "problems"}
    assert answer["targets"] == [
        {
            "target": "svc",
            "kind": "process",
            "name": "svc-1",
            "where": "this host",
            "fields": {"found": f"pid {proc.pid} (by match)", "health": "ok", "signal": "ok"},
            "problems": [],
        }
    ]


def test_a_bad_stack_file_exits_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: own\ntargets:\n  svc:\n    instances:\n      - name: svc-1\n        pid: lots\n")
    for action in ("check", "status"):
        result = chaos("stack", action, str(bad))
        assert result.returncode == ExitCode.INVALID_INPUT
        assert f"{bad}:6:" in result.stderr and "Traceback" not in result.stderr
    missing = chaos("stack", "check", str(tmp_path / "nothing.yaml"))
    assert missing.returncode == ExitCode.INVALID_INPUT and "nothing.yaml" in missing.stderr
    assert chaos("stack", "check", "--parallel", "0", str(bad)).returncode == ExitCode.INVALID_INPUT
    assert chaos("stack", "discover", "--ssh", "no-at-sign").returncode == ExitCode.INVALID_INPUT


def test_status_of_a_stack_file_exit_0_when_all_run_and_1_when_not(started: Started, tmp_path: Path) -> None:
    proc, marker = started.sleeper()
    _, port = started.http_server()
    good = stack_file(tmp_path, marker, port)
    result = chaos("stack", "status", str(good))
    assert result.returncode == ExitCode.PASSED
    assert result.stdout.startswith(f"stack status {good}: stack 'own'")
    assert f"found: pid {proc.pid} (by match); health: ok" in result.stdout and "signal" not in result.stdout
    answer = json.loads(chaos("stack", "status", str(good), "--json").stdout)
    assert answer["ok"] is True and answer["targets"][0]["fields"] == {
        "found": f"pid {proc.pid} (by match)",
        "health": "ok",
    }
    proc.kill()
    proc.wait(timeout=10)
    result = chaos("stack", "status", str(good))
    assert result.returncode == ExitCode.DEVIATED and "svc-1: no process on this host matches" in result.stdout


def test_status_without_file_is_still_the_reference_stacks(tmp_path: Path) -> None:
    result = chaos("stack", "status", "--dir", str(tmp_path / "none"))
    assert result.returncode != 0 and "state.json" in result.stdout + result.stderr


def test_discover_writes_a_draft_that_loads_and_finds_the_listener(started: Started, tmp_path: Path) -> None:
    proc, port = started.http_server()
    out = tmp_path / "draft.yaml"
    result = chaos("stack", "discover", "--out", str(out), "--name", "lab")
    assert result.returncode == ExitCode.PASSED, result.stderr
    assert f"pid {proc.pid}  127.0.0.1:{port}  {sys.executable} -m http.server {port}" in result.stdout
    assert f"draft written to {out}: edit it, then `chaos.py stack check {out}`" in result.stdout
    description = read_description(out)
    assert description.name == "lab" and "http-server" in description.targets
    # Without --out the draft is standard output (the listing goes to standard error).
    result = chaos("stack", "discover")
    assert result.stdout.startswith("# A draft stack description") and f"pid {proc.pid}" in result.stderr


def test_discover_over_an_unreachable_host_exits_4(tmp_path: Path) -> None:
    (tmp_path / "known_hosts").write_text("")
    port = free_port()
    result = chaos(
        "stack", "discover", "--ssh", f"root@127.0.0.1:{port}", "--known-hosts", str(tmp_path / "known_hosts")
    )
    assert result.returncode == ExitCode.CANNOT_RUN
    assert result.stderr.startswith(f"error: cannot connect to root@127.0.0.1:{port}")


def test_help_names_every_option() -> None:
    check = chaos("stack", "check", "--help").stdout
    assert "--json" in check and "--parallel" in check and "exit codes:" in check
    discover = chaos("stack", "discover", "--help").stdout
    for option in ("--ssh", "--local", "--key", "--known-hosts", "--out", "--name"):
        assert option in discover
    for action in ("up", "down", "status"):
        text = chaos("stack", action, "--help").stdout
        assert all(option in text for option in ("--dir", "--profile", "--port", "--json"))
