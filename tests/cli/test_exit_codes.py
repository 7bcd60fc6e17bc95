"""Every exit code of `chaos.py` in the documented table, produced by real runs (real processes, real Locust)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.health import wait_healthy
from clients.procs import is_running, spawn
from engine.errors import ExitCode
from engine.journal import load_journal
from stackspec.targets import HttpHealth, ProcessInstance, ProcessTarget, StackDescription
from tests.helpers import chaos, free_port

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.slow]


def service(tmp: Path, name: str, role: str, restart_argv: list[str] | None = None) -> ProcessInstance:
    port = free_port()
    argv = [sys.executable, str(HERE / "svc.py"), str(port), role]
    inst = spawn(
        ProcessInstance(
            name=name,
            argv=argv,
            log=str(tmp / f"{name}.log"),
            health=HttpHealth(http=f"http://127.0.0.1:{port}/health"),
            role_url=f"http://127.0.0.1:{port}/status",
            ports={"http": port},
        )
    )
    assert inst.health is not None
    wait_healthy(inst.health, 10)
    return inst.model_copy(update={"argv": restart_argv}) if restart_argv else inst


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A web server (the load's target, never faulted) and a group of two services to fault."""
    web = service(tmp_path, "web-1", "web")
    svc = [service(tmp_path, "svc-1", "leader"), service(tmp_path, "svc-2", "follower")]
    state: dict[str, object] = {"web": web, "svc": svc, "tmp": tmp_path}
    yield state
    for inst in [web, *svc]:
        if inst.pid and is_running(inst):
            os.kill(inst.pid, signal.SIGKILL)
    # Processes restarted by a run's rollback are known only to that run's journal.
    for journal in tmp_path.glob("runs/*/journal.json"):
        for fault in load_journal(journal).faults:
            for result in fault.rollback:
                pid = result.detail.get("pid")
                cmdline = Path(f"/proc/{pid}/cmdline")
                if pid and cmdline.exists() and b"svc.py" in cmdline.read_bytes():
                    os.kill(pid, signal.SIGKILL)


def write_experiment(
    world: dict[str, object],
    *,
    steady: str,
    stack: StackDescription | None = None,
    at: str = "4s",
    host: str = "web",
    select: str = "{role: leader}",
    extra: str = "",
    load: str = "11s",
) -> Path:
    """The test experiment: `load` long (11 s: baseline, a 2 s fault at `at`, and a recovery window that still
    holds probe samples when a restart is slow on a loaded machine)."""
    tmp = world["tmp"]
    assert isinstance(tmp, Path)
    web = world["web"]
    svc = world["svc"]
    assert isinstance(web, ProcessInstance) and isinstance(svc, list)
    desc = stack or StackDescription(
        name="cli-test",
        endpoints={"web": f"http://127.0.0.1:{web.ports['http']}"},
        targets={"svc": ProcessTarget(instances=svc), "web": ProcessTarget(instances=[web])},
        market_hours=None,  # a test stack never trades: runs are allowed at any time of day
    )
    (tmp / "stack.json").write_text(desc.model_dump_json(indent=1))
    path = tmp / "exp.yaml"
    path.write_text(f"""\
version: 1
title: CLI exit code test
stack: {{file: stack.json}}
load: {{locustfile: {HERE / "web_locustfile.py"}, users: 4, spawn_rate: 4, duration: {load}, warmup: 2s, host: {host}}}
steady_state:
{steady}
method:
  - {{at: {at}, duration: 2s, kind: process.kill, target: svc, select: {select}}}
objectives: {{rto: 5s}}
{extra}
integrity: []            # this service takes no orders: nothing to reconcile
recovery: {{stable_for: 1s}}
""")
    return path


def only_journal(runs: Path) -> Path:
    (journal,) = runs.glob("*/journal.json")
    return journal


OK_STEADY = "  - {name: errors, metric: error_rate, max: 0.01}\n  - {name: web health, http: {url: '{web}/health'}}"


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
