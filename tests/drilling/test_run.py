"""The drill runner over fake experiment runs (the real runner with fakes): events drive the runbook,
journals give the figures, failures give the exit code, and the record, report and history agree."""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

from drilling.history import History
from drilling.model import Drill, DrillPlan
from drilling.record import DrillRecord, HistoryRow, load_drill_record
from drilling.run import DrillOptions, RunFunction, finish_drill, run_drill, sha256_file
from engine.api import RunOptions, RunOutcome
from engine.errors import ExitCode, StackError
from engine.events import EventBus
from engine.loader import load_document, validate_model
from tests.drilling.receiver import receiving
from tests.engine.fakes import run_fake

BREAK = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher}\n"

DRILL = """\
version: 1
name: fake
title: Fake drill
owner: tests
objectives: {rto: 30s, time_to_detect: 3s, time_to_recover: 30s}
experiments: [a.yaml, b.yaml]
runbook:
  - {id: brief, title: brief the team}
  - {id: inject, title: fault in, when: fault_injected}
  - {id: detect, title: alert fires, when: steady_state_failed, marks: detect}
  - {id: restored, title: healthy again, when: steady_state_restored}
  - {id: recover, title: recovered, when: recovered, marks: recover}
  - {id: second, title: second experiment's fault, when: fault_injected, experiment: 2}
  - {id: debrief, title: debrief}
calendar: {market_hours: none}
"""


def plan(tmp_path: Path, text: str = DRILL) -> DrillPlan:
    path = tmp_path / "drill.yaml"
    path.write_text(textwrap.dedent(text))
    doc = load_document(path)
    return DrillPlan(validate_model(Drill, doc), doc, [])  # the fake experiments are not in the registry's files


def fake_runs(tmp_path: Path, *methods: str, params: str = "") -> tuple[RunFunction, list[Path]]:
    calls: list[Path] = []

    def run(path: Path, options: RunOptions, bus: EventBus) -> RunOutcome:
        calls.append(path)
        sub = tmp_path / f"exp{len(calls)}"
        sub.mkdir()
        journal, _ = run_fake(sub, methods[len(calls) - 1], bus=bus)
        run_dir = sub / "run"
        return RunOutcome(journal, run_dir, run_dir / "journal.json")

    return run, calls


def options(tmp_path: Path) -> DrillOptions:
    return DrillOptions(runs_dir=tmp_path / "runs", non_interactive=True, web=False, live=False)


def test_events_drive_the_runbook_and_journals_give_the_figures(tmp_path: Path) -> None:
    run, calls = fake_runs(tmp_path, BREAK, BREAK)
    out = io.StringIO()
    outcome = run_drill(plan(tmp_path), options(tmp_path), out=out, run=run)
    record = load_drill_record(outcome.record_path)
    assert [c.name for c in calls] == ["a.yaml", "b.yaml"]
    assert record.verdict == "passed" and record.exit_code == ExitCode.PASSED, record.summary
    steps = {s.id: s for s in record.steps}
    assert all(s.status == "done" for s in record.steps), [(s.id, s.status, s.detail) for s in record.steps]
    assert steps["brief"].auto_acknowledged and steps["brief"].by == "auto (CI)"
    assert not steps["inject"].auto_acknowledged and steps["inject"].by == "auto"
    first = record.experiments[0]
    assert first.fault_started_at == steps["inject"].done_at
    assert (
        "experiment 2" in steps["second"].detail and steps["second"].done_at == record.experiments[1].fault_started_at
    )
    # The fake world breaks for the fault and heals 2 s after the rollback (fakes.World).
    assert record.time_to_detect_s is not None and 0 < record.time_to_detect_s <= 3
    assert record.time_to_recover_s is not None and record.time_to_recover_s >= 8
    journal = json.loads(Path(str(first.journal)).read_text())
    rto = max(f["recovery"]["rto_s"] for f in journal["faults"])
    assert first.rto_s == rto and record.rto_s == rto
    assert record.time_to_recover_s == pytest.approx(rto, abs=0.01)  # 'recovered' is the journal's recovery
    assert first.requests > 0 and first.failed_requests > 0 and first.peak_p99_ms is not None
    assert [(o.name, o.met) for o in record.objectives] == [
        ("rto", True),
        ("time_to_detect", True),
        ("time_to_recover", True),
    ]
    assert "step 3 'detect' DONE" in out.getvalue() and "\x1b[" not in out.getvalue()


def test_a_missed_objective_fails_the_drill_with_exit_1(tmp_path: Path) -> None:
    run, _ = fake_runs(tmp_path, BREAK, BREAK)
    strict = DRILL.replace("rto: 30s", "rto: 5s")  # the fake world heals slower than that
    outcome = run_drill(plan(tmp_path, strict), options(tmp_path), out=io.StringIO(), run=run)
    assert (outcome.record.verdict, outcome.exit_code) == ("failed", ExitCode.DEVIATED)
    assert "objective(s) missed: rto" in outcome.record.summary


def test_a_stuck_rollback_stops_the_drill_with_exit_3(tmp_path: Path) -> None:
    stuck = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher, params: {fail_rollback: true}}\n"
    run, calls = fake_runs(tmp_path, stuck, BREAK)
    outcome = run_drill(plan(tmp_path), options(tmp_path), out=io.StringIO(), run=run)
    assert outcome.exit_code == ExitCode.ROLLBACK_FAILED and len(calls) == 1  # no second experiment
    assert [e.verdict for e in outcome.record.experiments] == ["rollback_failed", "skipped"]
    assert "could NOT be rolled back" in outcome.record.summary


def test_an_experiment_that_cannot_run_gives_exit_4_and_a_record(tmp_path: Path) -> None:
    def run(path: Path, options: RunOptions, bus: EventBus) -> RunOutcome:
        raise StackError("no reference stack is running in runs/stack")

    outcome = run_drill(plan(tmp_path), options(tmp_path), out=io.StringIO(), run=run)
    record = load_drill_record(outcome.record_path)
    assert (record.verdict, record.exit_code) == ("error", ExitCode.CANNOT_RUN)
    assert "no reference stack" in record.summary
    assert {s.id: s.status for s in record.steps}["detect"] == "missed"


def test_an_interrupt_between_experiments_is_recorded(tmp_path: Path) -> None:
    run, _ = fake_runs(tmp_path, BREAK)

    def interrupted(path: Path, options: RunOptions, bus: EventBus) -> RunOutcome:
        if path.name == "b.yaml":
            raise KeyboardInterrupt
        return run(path, options, bus)

    outcome = run_drill(plan(tmp_path), options(tmp_path), out=io.StringIO(), run=interrupted)
    assert (outcome.record.verdict, outcome.exit_code) == ("interrupted", ExitCode.INTERRUPTED)
    assert {s.id: s.status for s in outcome.record.steps}["second"] == "skipped"


def test_finish_writes_report_history_and_webhooks_that_all_agree(tmp_path: Path) -> None:
    with receiving() as receiver:
        text = DRILL + f"notify: [{{webhook: '{receiver.url('/h?token=SECRET')}'}}]\n"
        run, _ = fake_runs(tmp_path, BREAK, BREAK)
        outcome = run_drill(plan(tmp_path, text), options(tmp_path), out=io.StringIO(), run=run)
        history = History(tmp_path / "history.sqlite")
        seen: list[Sequence[HistoryRow]] = []

        def write_report(record: DrillRecord, out_dir: Path, rows: Sequence[HistoryRow]) -> Path:
            seen.append(rows)
            path = out_dir / "drill-report.html"
            path.write_text(f"<h1>{record.drill_name}</h1>")
            return path

        row = finish_drill(outcome, history, write_report, out=io.StringIO())
    record = load_drill_record(outcome.record_path)
    assert record.report == str(outcome.drill_dir / "drill-report.html") == row.report
    assert row.record_sha256 == sha256_file(outcome.record_path)
    assert history.runs("fake") == [row] and list(seen[0]) == [row]
    assert [r["json"]["event"] for r in receiver.requests] == ["drill_started", "drill_finished"]
    finished = receiver.requests[1]["json"]
    assert finished["run_id"] == record.drill_run_id and finished["report"] == record.report
    assert finished["verdict"] == record.verdict
    assert [n["ok"] for n in record.notifications] == [True, True]
    assert "SECRET" not in outcome.record_path.read_text()


def test_a_failing_report_does_not_lose_the_run(tmp_path: Path) -> None:
    run, _ = fake_runs(tmp_path, BREAK, BREAK)
    outcome = run_drill(plan(tmp_path), options(tmp_path), out=io.StringIO(), run=run)

    def broken(record: DrillRecord, out_dir: Path, rows: Sequence[HistoryRow]) -> Path:
        raise RuntimeError("template missing")

    row = finish_drill(outcome, History(tmp_path / "h.sqlite"), broken, out=io.StringIO())
    assert row.report is None and load_drill_record(outcome.record_path).report is None
    assert outcome.report_error == "RuntimeError: template missing"
    assert row.record_sha256 == sha256_file(outcome.record_path)


def test_an_interrupted_experiment_interrupts_the_drill(tmp_path: Path) -> None:
    signalled = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher, params: {signal_in_inject: SIGTERM}}\n"
    run, calls = fake_runs(tmp_path, signalled, BREAK)
    outcome = run_drill(plan(tmp_path), options(tmp_path), out=io.StringIO(), run=run)
    assert (outcome.record.verdict, outcome.exit_code) == ("interrupted", ExitCode.INTERRUPTED)
    assert len(calls) == 1 and outcome.record.experiments[0].verdict == "interrupted"
    steps = {s.id: s for s in outcome.record.steps}
    assert steps["debrief"].status == "skipped" and not steps["debrief"].auto_acknowledged
