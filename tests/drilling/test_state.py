"""The drill's shared state and the events driving it: each change saved and printed, detection only after a fault."""

from __future__ import annotations

import threading
from pathlib import Path

import yaml

from drilling.ack import Ack
from drilling.listener import ExperimentListener
from drilling.model import Drill
from drilling.record import DrillExperimentRecord, DrillRecord, load_drill_record
from drilling.runbook import Runbook
from drilling.state import DrillState
from engine.events import FaultInjected, PhaseStarted, ProbeObserved

DRILL = Drill.model_validate(
    yaml.safe_load(
        """
version: 1
name: state
title: State
owner: tests
experiments: [a.yaml]
runbook:
  - {id: brief, title: brief the team}
  - {id: detect, title: alert fires, when: steady_state_failed, marks: detect}
  - {id: restored, title: healthy again, when: steady_state_restored}
calendar: {market_hours: none}
"""
    )
)


def state_in(tmp_path: Path, said: list[str]) -> DrillState:
    runbook = Runbook(list(DRILL.runbook))
    record = DrillRecord(
        drill_run_id="run", drill_name="state", drill_file="d.yaml", drill_sha256="0" * 64, drill={},
        started_at=1000.0, experiments=[DrillExperimentRecord(file="a.yaml")], steps=runbook.records,
    )  # fmt: skip
    return DrillState(DRILL, record, runbook, tmp_path / "drill.json", said.extend)


def test_a_change_is_saved_and_printed_and_a_refused_ack_changes_nothing(tmp_path: Path) -> None:
    said: list[str] = []
    state = state_in(tmp_path, said)
    state.changed([])
    assert not (tmp_path / "drill.json").exists() and said == []  # nothing changed: nothing written
    state.start_runbook()
    assert said == ["step 1 'brief' due (manual): brief the team — acknowledge: chaos.py drill ack brief"]
    assert state.check_ack("detect") is not None and state.check_ack("brief") is None
    state.acknowledge([Ack("detect", "eve", 1001.0, "cli")])
    assert "acknowledgement refused" in said[-1]
    state.acknowledge([Ack("brief", "alice", 1002.0, "web")])
    assert load_drill_record(tmp_path / "drill.json").steps[0].by == "alice"
    assert state.pending_steps() == ["detect", "restored"]
    snapshot = state.snapshot()
    assert (snapshot["current"], snapshot["steps"][1]["how"]) == (1, "auto: steady_state_failed")
    assert snapshot["page"] is None


def test_a_copy_of_an_experiment_changes_the_record_only_when_handed_back(tmp_path: Path) -> None:
    said: list[str] = []
    state = state_in(tmp_path, said)
    exp = state.experiment(0)
    exp.verdict = "running"
    assert state.experiment(0).verdict == "pending"
    state.update_experiment(0, exp, ["experiment 1 started"], summary="why")
    record = load_drill_record(tmp_path / "drill.json")
    assert (record.experiments[0].verdict, record.summary, said) == ("running", "why", ["experiment 1 started"])


def test_detection_needs_a_fault_first_and_happens_once_until_restored(tmp_path: Path) -> None:
    said: list[str] = []
    state = state_in(tmp_path, said)
    state.start_runbook()
    state.acknowledge([Ack("brief", "alice", 1001.0, "cli")])
    listen = ExperimentListener(state, 1, 1)
    listen(PhaseStarted("baseline", t=1002.0))
    assert state.snapshot()["phase"] == "experiment 1/1: baseline"
    listen(ProbeObserved(second=1005.0, ok=False, failing=["p99"], t=1006.0))  # no fault yet
    listen(FaultInjected(index=1, kind="k", target="web", targets=["web"], ok=True, t=1010.5))
    listen(ProbeObserved(second=1009.0, ok=False, failing=["p99"], t=1011.0))  # that second ended before it
    assert state.pending_steps() == ["detect", "restored"]
    listen(ProbeObserved(second=1010.0, ok=False, failing=["p99"], t=1011.2))  # holds the injection
    listen(ProbeObserved(second=1011.0, ok=False, failing=["p99", "errors"], t=1012.0))  # still failing: once
    listen(ProbeObserved(second=1015.0, ok=True, failing=[], t=1016.0))
    steps = load_drill_record(tmp_path / "drill.json").steps
    assert [(s.id, s.status, s.done_at) for s in steps[1:]] == [
        ("detect", "done", 1011.2),
        ("restored", "done", 1016.0),
    ]
    assert "steady_state_failed in experiment 1: p99" in steps[1].detail


def test_threads_change_the_state_through_its_lock(tmp_path: Path) -> None:
    said: list[str] = []
    state = state_in(tmp_path, said)
    state.start_runbook()
    readers = [threading.Thread(target=lambda: [state.snapshot() for _ in range(200)]) for _ in range(3)]
    for reader in readers:
        reader.start()
    for n in range(50):
        state.set_phase(f"phase {n}")
        state.acknowledge([Ack("brief", f"op{n}", 1000.0 + n, "cli")])
    for reader in readers:
        reader.join()
    assert load_drill_record(tmp_path / "drill.json").steps[0].by == "op0"  # the first ack; the rest refused
    assert sum("acknowledgement refused" in line for line in said) == 49
