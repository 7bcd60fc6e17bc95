"""One drill per system, and `recover` never ends a live run's fault nor starts a second copy of a service.

Real runs of chaos.py against real processes: two runs reaching one system through two stack files,
`recover` while a run holds its fault in place, and `recover` after a supervisor brought a killed
service back under a new PID.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from clients.health import wait_healthy
from clients.procs import spawn, state_of
from engine.errors import ExitCode
from engine.journal import load_journal
from engine.locks import SystemBusyError, SystemLock, identities
from engine.undo import LEDGER_FILE, UndoLedger
from stackspec.targets import ProcessInstance, StackDescription
from tests.support.cli_world import OK_STEADY, start_run, wait_fault, write_experiment
from tests.support.helpers import chaos

pytestmark = [pytest.mark.slow]


def long_pause(world: dict[str, object], pause_s: int = 10) -> Path:
    """A process.pause of the leader (10 s by default): long enough for a second run and a recover to try."""
    path = write_experiment(world, steady=OK_STEADY)
    text = path.read_text().replace(
        "  - {at: 4s, duration: 2s, kind: process.kill, target: svc, select: {role: leader}}",
        f"  - {{at: 4s, duration: {pause_s}s, kind: process.pause, target: svc, select: {{role: leader}}}}",
    )
    text = text.replace("duration: 11s", f"duration: {pause_s + 7}s").replace("rto: 5s", f"rto: {pause_s + 5}s")
    path.write_text(text)
    return path


def leader(world: dict[str, object]) -> ProcessInstance:
    svc = world["svc"]
    assert isinstance(svc, list) and isinstance(svc[0], ProcessInstance)
    return svc[0]


def test_a_copy_of_the_stack_file_is_the_same_system_and_is_refused(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    experiment = long_pause(world)
    first = start_run(experiment, runs)
    try:
        wait_fault(runs)
        # The same processes through another file name, from another runs directory.
        copy = tmp_path / "copy-of-stack.json"
        copy.write_text((tmp_path / "stack.json").read_text())
        other = tmp_path / "other.yaml"
        other.write_text(experiment.read_text().replace("stack: {file: stack.json}", f"stack: {{file: {copy.name}}}"))
        refused = chaos("run", str(other), "--runs-dir", str(tmp_path / "other-runs"))
        assert refused.returncode == ExitCode.CANNOT_RUN, refused.stdout + refused.stderr
        assert "is drilling this system now" in refused.stderr and "recover" not in refused.stderr
        assert not (tmp_path / "other-runs").exists() or not any((tmp_path / "other-runs").iterdir())
        out, _ = first.communicate(timeout=90)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    assert first.returncode == ExitCode.PASSED, out


def test_recover_and_run_recover_leave_a_live_runs_fault_to_it(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # 30 s: the pause must outlast a `recover` and a refused `run` started one after the other, each a new
    # Python process, on a loaded 2-core machine (10 s did not, in a CI rehearsal).
    experiment = long_pause(world, pause_s=30)
    first = start_run(experiment, runs)
    paused = leader(world)
    try:
        wait_fault(runs)
        assert paused.pid is not None and state_of(paused.pid) == "T"
        recovered = chaos("recover", "--runs-dir", str(runs))
        assert recovered.returncode == ExitCode.CANNOT_RUN, recovered.stdout + recovered.stderr
        assert "is drilling this system now" in recovered.stdout + recovered.stderr
        assert state_of(paused.pid) == "T", "recover resumed the live run's paused process"
        second = chaos("run", str(experiment), "--runs-dir", str(runs), "--recover")
        assert second.returncode == ExitCode.CANNOT_RUN, second.stdout + second.stderr
        assert "is drilling this system now" in second.stderr
        assert state_of(paused.pid) == "T", "run --recover resumed the live run's paused process"
        out, _ = first.communicate(timeout=90)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    assert first.returncode == ExitCode.PASSED, out
    journal = load_journal(next(runs.glob("*/journal.json")))
    (fault,) = journal.faults
    assert fault.injected_at is not None and fault.ended_at is not None
    assert fault.ended_at - fault.injected_at >= 29.5, "the pause ended early"
    assert UndoLedger(runs / LEDGER_FILE).pending() == []


def test_recover_after_a_supervisor_restarted_the_service_adopts_it_instead_of_starting_a_copy(
    world: dict[str, object], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY)
    text = experiment.read_text().replace("duration: 2s, kind: process.kill", "duration: 8s, kind: process.kill")
    experiment.write_text(text.replace("duration: 11s", "duration: 15s"))
    runner = start_run(experiment, runs)
    try:
        wait_fault(runs)
    finally:
        os.kill(runner.pid, signal.SIGKILL)  # the ledger is all that is left of the run
        runner.wait(timeout=10)
    # A supervisor (here: the test) brings the service back under a new PID, as systemd would.
    killed = leader(world)
    back = spawn(killed.model_copy(update={"pid": None, "start_time": None}))
    assert back.health is not None and back.pid is not None
    wait_healthy(back.health, 15)
    try:
        recovered = chaos("recover", "--runs-dir", str(runs))
        assert recovered.returncode == ExitCode.PASSED, recovered.stdout + recovered.stderr
        assert f"'adopted': True, 'pid': {back.pid}" in recovered.stdout
        assert "'restarted': True" not in recovered.stdout
        overlay = json.loads((tmp_path / "stack.json.live.json").read_text())
        assert overlay["instances"]["svc"]["svc-1"]["pid"] == back.pid
        dry = chaos("run", "--dry-run", str(experiment), "--runs-dir", str(runs))
        assert dry.returncode == ExitCode.PASSED and "would hit now: svc-1" in dry.stdout, dry.stdout + dry.stderr
    finally:
        live = tmp_path / "stack.json.live.json"
        pids = {back.pid, *(int(p) for p in re.findall(r'"pid": (\d+)', live.read_text() if live.exists() else ""))}
        for pid in pids:
            if state_of(pid) not in (None, "Z"):
                os.kill(pid, signal.SIGKILL)


def test_the_lock_is_keyed_on_what_the_description_points_at(world: dict[str, object], tmp_path: Path) -> None:
    """Descriptions naming the same processes and addresses — however spelled — take the same locks."""
    write_experiment(world, steady=OK_STEADY)
    original = StackDescription.model_validate_json((tmp_path / "stack.json").read_text())
    respelled = json.loads(original.model_dump_json())
    respelled["name"] = "someone-elses-name"
    respelled["endpoints"]["web"] = respelled["endpoints"]["web"].replace("127.0.0.1", "localhost")
    assert set(identities(StackDescription.model_validate(respelled))) & set(identities(original))
    second = SystemLock(identities(StackDescription.model_validate(respelled)), "second", tmp_path / "locks")
    with (
        SystemLock(identities(original), "run test-holder (pid 1)", tmp_path / "locks"),
        pytest.raises(SystemBusyError, match="run test-holder \\(pid 1\\) is drilling this system now"),
    ):
        second.acquire()
    SystemLock(identities(original), "after", tmp_path / "locks").acquire()  # released: free again
