"""Safety, from the outside: undo-ledger recovery after a killed runner, one drill per stack, the red button."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.errors import ExitCode
from engine.journal import load_journal
from engine.undo import LEDGER_FILE, UndoLedger
from injectors.process import is_running
from injectors.targets import ProcessInstance
from tests.cli.test_exit_codes import OK_STEADY, write_experiment
from tests.cli.test_exit_codes import world as world  # the fixture
from tests.helpers import ROOT, chaos


def wait_injected(journal_dir: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in journal_dir.glob("*/journal.json"):
            try:
                faults = json.loads(path.read_text())["faults"]
            except (ValueError, OSError):
                continue
            if faults and faults[0]["status"] == "injected":
                return
        time.sleep(0.05)
    raise AssertionError("the fault was not injected in time")


def test_a_killed_runner_leaves_its_fault_pending_and_recover_undoes_it(
    world: dict[str, object], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY)
    runner = subprocess.Popen(
        [sys.executable, str(ROOT / "chaos.py"), "run", str(experiment), "--runs-dir", str(runs), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_injected(runs)
    finally:
        os.kill(runner.pid, signal.SIGKILL)  # no rollback of its own: the ledger is all that is left
        runner.wait(timeout=10)
    svc = world["svc"]
    assert isinstance(svc, list)
    leader: ProcessInstance = svc[0]
    assert not is_running(leader), "the killed runner's fault (the leader killed) is still in place"
    (pending,) = UndoLedger(runs / LEDGER_FILE).pending()
    assert (pending.kind, pending.index, [t.id for t in pending.plan.targets]) == ("process.kill", 1, ["svc-1"])

    refused = chaos("run", str(experiment), "--runs-dir", str(runs))
    assert refused.returncode == ExitCode.CANNOT_RUN
    assert "chaos.py recover" in refused.stderr and "nothing was started" in refused.stderr
    assert len(list(runs.glob("*/journal.json"))) == 1  # the refused run did not even create a run

    recovered = chaos("recover", "--runs-dir", str(runs))
    assert recovered.returncode == ExitCode.PASSED, recovered.stdout + recovered.stderr
    assert "fault #1 process.kill on svc: undone and verified gone" in recovered.stdout
    restarted = int(re.search(r"rollback svc-1: ok .*'pid': (\d+)", recovered.stdout).group(1))  # type: ignore[union-attr]
    try:
        assert b"svc.py" in Path(f"/proc/{restarted}/cmdline").read_bytes()
        assert UndoLedger(runs / LEDGER_FILE).pending() == []
        again = chaos("recover", "--runs-dir", str(runs))
        assert again.returncode == ExitCode.PASSED and "nothing to recover" in again.stdout
    finally:
        os.kill(restarted, signal.SIGKILL)


def test_one_drill_per_stack_at_a_time(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY)
    lock = tmp_path / "stack.json.lock"
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a run in progress holds it
        held.write("run 20261125T000000Z-other (pid 1)\n")
        held.flush()
        refused = chaos("run", str(experiment), "--runs-dir", str(runs))
    assert refused.returncode == ExitCode.CANNOT_RUN
    assert "run 20261125T000000Z-other (pid 1) is drilling this stack" in refused.stderr
    svc = world["svc"]
    assert isinstance(svc, list) and all(is_running(i) for i in svc)  # nothing was injected


def test_the_big_red_button_rolls_back_and_ends_the_run_as_aborted(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY)
    runner = subprocess.Popen(
        [sys.executable, str(ROOT / "chaos.py"), "run", str(experiment), "--runs-dir", str(runs), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_injected(runs)
        pressed = chaos("abort", "--runs-dir", str(runs))
        assert pressed.returncode == ExitCode.PASSED and "abort requested" in pressed.stdout
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait(timeout=10)
    assert runner.returncode == ExitCode.DEVIATED, output
    journal = load_journal(next(runs.glob("*/journal.json")))
    assert journal.verdict == "aborted" and "chaos.py abort" in journal.summary
    (fault,) = journal.faults
    assert fault.status == "rolled_back" and fault.rollback[0].detail["restarted"] is True
    assert UndoLedger(runs / LEDGER_FILE).pending() == []
