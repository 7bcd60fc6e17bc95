"""Every exit code of `chaos.py` in the documented table, produced by real runs (real processes, real Locust)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients.procs import is_running
from engine.errors import ExitCode
from engine.journal import load_journal
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tests.support.cli_world import OK_STEADY, only_journal, write_experiment
from tests.support.helpers import chaos, free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.slow]


def test_exit_0_passed_kill_restart_and_reports(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = chaos("run", str(write_experiment(world, steady=OK_STEADY)), "--runs-dir", str(runs), "--seed", "5")
    assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
    journal = load_journal(only_journal(runs))
    (fault,) = journal.faults
    assert fault.status == "rolled_back" and [t.id for t in fault.inject] == ["svc-1"]
    assert fault.rollback[0].detail["restarted"] is True
    assert journal.seed == 5
    for name in ("report.html", "junit.xml", "metrics.jsonl", "locust.log"):
        assert (only_journal(runs).parent / name).is_file(), name
    assert "verdict: PASSED" in result.stdout


def test_exit_1_baseline_deviates_and_nothing_is_injected(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    steady = "  - {name: impossible latency, metric: latency_p99_ms, max: 0.001}"
    svc = world["svc"]
    assert isinstance(svc, list)
    pids = [i.pid for i in svc]
    result = chaos("run", str(write_experiment(world, steady=steady)), "--runs-dir", str(runs))
    assert result.returncode == ExitCode.DEVIATED, result.stdout + result.stderr
    journal = load_journal(only_journal(runs))
    assert journal.faults[0].status == "skipped" and not journal.faults[0].inject
    assert all(is_running(i) for i in svc) and [i.pid for i in svc] == pids


def test_exit_2_invalid_file_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ntitle: x\nload: {users: -1}\n")
    runs = tmp_path / "runs"
    result = chaos("run", str(bad), "--runs-dir", str(runs))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert f"{bad}:3:" in result.stderr
    assert not runs.exists()
    assert chaos("validate", str(bad)).returncode == ExitCode.INVALID_INPUT
    assert chaos("run").returncode == ExitCode.INVALID_INPUT  # argparse usage errors are invalid input too


def test_exit_3_when_the_killed_process_cannot_be_restarted(world: dict[str, object], tmp_path: Path) -> None:
    svc = world["svc"]
    web = world["web"]
    assert isinstance(svc, list) and isinstance(web, ProcessInstance)
    broken = svc[0].model_copy(update={"argv": [sys.executable, "-c", "raise SystemExit(3)"], "health": None})
    desc = StackDescription(
        name="cli-test",
        endpoints={"web": f"http://127.0.0.1:{web.ports['http']}"},
        targets={"svc": ProcessTarget(instances=[broken, svc[1]])},
        market_hours=None,  # a test stack never trades
    )
    runs = tmp_path / "runs"
    result = chaos("run", str(write_experiment(world, steady=OK_STEADY, stack=desc)), "--runs-dir", str(runs))
    assert result.returncode == ExitCode.ROLLBACK_FAILED, result.stdout + result.stderr
    journal = load_journal(only_journal(runs))
    assert journal.faults[0].status == "rollback_failed"
    assert "could NOT be rolled back" in result.stdout


def test_exit_4_when_the_load_target_is_down(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    svc = world["svc"]
    assert isinstance(svc, list)
    desc = StackDescription(
        name="cli-test",
        endpoints={"web": f"http://127.0.0.1:{free_port()}"},
        targets={"svc": ProcessTarget(instances=svc)},
        market_hours=None,  # a test stack never trades
    )
    result = chaos("run", str(write_experiment(world, steady=OK_STEADY, stack=desc)), "--runs-dir", str(runs))
    assert result.returncode == ExitCode.CANNOT_RUN, result.stdout + result.stderr
    journal = load_journal(only_journal(runs))
    assert "preflight failed" in journal.errors[0].message and journal.load and journal.load.started_at is None
    assert all(is_running(i) for i in svc)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_exit_130_interrupted_after_injection_rolls_back(world: dict[str, object], tmp_path: Path, sig: int) -> None:
    runs = tmp_path / "runs"
    path = write_experiment(world, steady=OK_STEADY)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "chaos.py"), "run", str(path), "--runs-dir", str(runs)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            journals = list(runs.glob("*/journal.json"))
            if journals:
                with contextlib.suppress(ValueError):
                    if any(e["type"] == "fault_injected" for e in json.loads(journals[0].read_text())["events"]):
                        break
            time.sleep(0.1)
        else:
            pytest.fail("the fault was never injected")
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.INTERRUPTED, out
    journal = load_journal(only_journal(runs))
    assert journal.verdict == "interrupted" and journal.faults[0].status == "rolled_back"
    desc = StackDescription.model_validate_json((tmp_path / "stack.json").read_text())
    svc_target = desc.targets["svc"]
    assert isinstance(svc_target, ProcessTarget) and svc_target.instances[0].name == "svc-1"
    # The user's stack file is never rewritten; the journal holds the restarted PID, which must be alive.
    new_pid = journal.faults[0].rollback[0].detail["pid"]
    assert new_pid and os.path.exists(f"/proc/{new_pid}")
