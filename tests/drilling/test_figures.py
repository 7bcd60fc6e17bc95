"""Drill figures per experiment and per fault; the headline is the worst single one, never a span across experiments."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drilling.figures import HEADLINE, attribute, derive, longest, objectives, recovered_at
from drilling.model import Drill, DrillPlan
from drilling.record import (
    DrillExperimentRecord,
    DrillFaultRecord,
    DrillRecord,
    StepRecord,
    load_drill_record,
)
from drilling.run import DrillOptions, RunFunction, run_drill
from engine.api import RunOptions, RunOutcome
from engine.events import EventBus
from engine.journal import FaultRecord, Journal, RecoveryRecord
from engine.loader import load_document, validate_model
from reports.management import format_duration, render_management_report
from tests.engine.fakes import T0, FakeClock, World, run_fake

BREAK = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher}\n"
HARMLESS = "- {name: error rate, metric: error_rate, max: 0.9}\n"  # the break stays within it: no impact
DRILL = """\
version: 1
name: two-parts
title: A backend kill, then a primary kill
owner: tests
objectives: {rto: 30s, time_to_detect: 10s, time_to_recover: 30s}
experiments: [a.yaml, b.yaml]
runbook:
  - {id: inject, title: fault in, when: fault_injected}
  - {id: detect, title: alert fires, when: steady_state_failed, marks: detect}
  - {id: recover, title: recovered, when: recovered, experiment: 2, marks: recover}
calendar: {market_hours: none}
"""


def two_experiments(tmp_path: Path) -> RunFunction:
    """The first experiment's fault hurts nothing; the second one, 100 s later, breaks the steady state."""
    calls: list[Path] = []

    def run(path: Path, options: RunOptions, bus: EventBus) -> RunOutcome:
        calls.append(path)
        sub = tmp_path / f"exp{len(calls)}"
        sub.mkdir()
        world = World(FakeClock(T0 + 100.0 * (len(calls) - 1)))
        steady = HARMLESS if len(calls) == 1 else "- {name: error rate, metric: error_rate, max: 0.01}\n"
        journal, _ = run_fake(sub, BREAK, bus=bus, world=world, steady=steady)
        return RunOutcome(journal, sub / "run", sub / "run" / "journal.json")

    return run


def test_drill_times_are_measured_within_one_experiment(tmp_path: Path) -> None:
    path = tmp_path / "drill.yaml"
    path.write_text(textwrap.dedent(DRILL))
    doc = load_document(path)
    plan = DrillPlan(validate_model(Drill, doc), doc, [])
    options = DrillOptions(runs_dir=tmp_path / "runs", non_interactive=True, web=False, live=False)
    outcome = run_drill(plan, options, out=io.StringIO(), run=two_experiments(tmp_path))
    record = load_drill_record(outcome.record_path)
    first, second = record.experiments
    assert first.faults[0].impact_s == 0.0 and first.time_to_detect_s is None
    span = (second.finished_at or 0) - (second.started_at or 0)
    # Detection and recovery happened in experiment 2: timed from its fault, not from experiment 1's 100 s earlier.
    assert record.time_to_detect_s is not None and 0 < record.time_to_detect_s <= 3
    assert record.time_to_recover_s is not None and 8 <= record.time_to_recover_s <= span
    assert record.worst["time_to_detect_s"] == record.worst["time_to_recover_s"] == 2
    assert second.time_to_detect_s == record.time_to_detect_s
    assert record.outage_s == second.outage_s == max(second.rto_s or 0, second.time_to_recover_s or 0)
    assert record.outage_s is not None and record.outage_s <= span
    assert [(o.name, o.status) for o in record.objectives] == [
        ("rto", "held"),
        ("time_to_detect", "held"),
        ("time_to_recover", "held"),
    ]
    assert "(experiment 2)" in record.objectives[1].detail
    steps = {s.id: s for s in record.steps}
    assert (steps["inject"].experiment, steps["detect"].experiment, steps["recover"].experiment) == (1, 2, 2)
    # The management report headlines that single experiment's outage; the fake stack declares no trading.
    report = render_management_report(record, base=outcome.drill_dir)
    outage = format_duration(record.outage_s)
    assert f'data-level="unclassified">Outage of {outage}</span>' in report
    assert "the longer of its RTO and its time to recover): experiment 2" in report
    assert "reportable" not in report


def experiment(
    number: int, start: float, lasts: float, fault_in: float | None, rto: float | None
) -> DrillExperimentRecord:
    fault = start + fault_in if fault_in is not None else None
    faults = (
        []
        if fault is None
        else [DrillFaultRecord(index=1, kind="k", target="t", injected_at=fault, rto_s=rto, recovered=rto is not None)]
    )
    return DrillExperimentRecord(
        file=f"e{number}.yaml", run_id=f"r{number}", started_at=start, finished_at=start + lasts,
        fault_started_at=fault, faults=faults, rto_s=rto, lost_orders=0, integrity="held",
    )  # fmt: skip


def record_of(experiments: list[DrillExperimentRecord], steps: list[StepRecord]) -> DrillRecord:
    return DrillRecord(
        drill_run_id="d", drill_name="d", drill_file="d.yaml", drill_sha256="0" * 64, drill={},
        started_at=experiments[0].started_at or 0.0, experiments=experiments, steps=steps,
    )  # fmt: skip


@st.composite
def drills(draw: st.DrawFn) -> DrillRecord:
    count = draw(st.integers(min_value=1, max_value=4))
    experiments, start = [], 1_000.0
    for n in range(1, count + 1):
        lasts = draw(st.floats(min_value=20.0, max_value=120.0))
        fault_in = draw(st.none() | st.floats(min_value=1.0, max_value=15.0))
        rto = draw(st.floats(min_value=0.0, max_value=lasts - 16.0)) if fault_in is not None else None
        experiments.append(experiment(n, start, lasts, fault_in, rto))
        start += lasts + draw(st.floats(min_value=0.0, max_value=300.0))
    steps = []
    for mark in ("detect", "recover"):
        n = draw(st.integers(min_value=1, max_value=count))
        exp = experiments[n - 1]
        assert exp.started_at is not None and exp.finished_at is not None
        done = draw(st.floats(min_value=exp.started_at, max_value=exp.finished_at))
        scoped = draw(st.booleans())  # automatic (its event's experiment) or by the time it was done
        steps.append(
            StepRecord(id=mark, title=mark, mode="auto" if scoped else "manual", marks=mark,
                       done_at=done, status="done", experiment=n if scoped else None)
        )  # fmt: skip
    return record_of(experiments, steps)


@settings(max_examples=200)
@given(drills())
def test_drill_figures_never_exceed_the_span_of_one_experiment(record: DrillRecord) -> None:
    derive(record)
    for name in HEADLINE:
        value = getattr(record, name)
        if value is None:
            continue
        exp = record.experiments[record.worst[name] - 1]
        assert exp.started_at is not None and exp.finished_at is not None
        assert 0 <= value <= exp.finished_at - exp.started_at, (name, value)
        assert value == max(getattr(e, name) for e in record.experiments if getattr(e, name) is not None)


def test_a_step_done_before_its_experiments_fault_measures_nothing() -> None:
    exps = [experiment(1, 1000.0, 60.0, 10.0, 2.0), experiment(2, 1100.0, 60.0, 10.0, 3.0)]
    early = StepRecord(id="detect", title="t", mode="manual", marks="detect", done_at=1105.0, status="done")
    record = record_of(exps, [early])
    assert attribute(early, exps) == 2
    derive(record)
    assert record.time_to_detect_s is None  # not 1105 - 1010 = 95 s measured from experiment 1
    (detect,) = objectives({"time_to_detect": 10.0}, record)
    assert detect.status == "not_checked" and detect.observed is None


def test_a_fault_that_never_recovered_leaves_no_headline_rto() -> None:
    record = record_of([experiment(1, 1000.0, 60.0, 10.0, 2.0), experiment(2, 1100.0, 60.0, 10.0, None)], [])
    derive(record)
    assert record.rto_s is None and record.outage_s is None
    (rto,) = objectives({"rto": 15.0}, record)
    assert rto.status == "failed" and "fault #1 of experiment 2 never recovered" in rto.why


def test_lost_orders_count_only_where_they_were_reconciled() -> None:
    checked, unchecked = experiment(1, 1000.0, 60.0, 10.0, 2.0), experiment(2, 1100.0, 60.0, 10.0, 2.0)
    unchecked.lost_orders, unchecked.lost_orders_why, unchecked.integrity = None, "no ledger", "not_checked"
    record = record_of([checked, unchecked], [])
    derive(record)
    assert record.rpo_orders == 0
    (rpo,) = objectives({"rpo_orders": 0}, record)
    assert rpo.status == "not_checked" and rpo.observed == 0 and "experiment 2: no ledger" in rpo.why
    unchecked.lost_orders = 3  # a loss found where it was checked fails it whatever else was not checked
    derive(record)
    assert objectives({"rpo_orders": 0}, record)[0].status == "failed"


def test_a_schema_1_drill_record_is_read_with_figures_per_experiment(tmp_path: Path) -> None:
    exps = [experiment(1, 1000.0, 60.0, 10.0, 2.0), experiment(2, 1100.0, 60.0, 10.0, 3.0)]
    old = record_of(exps, [
        StepRecord(id="detect", title="t", mode="auto", marks="detect", done_at=1111.0, status="done"),
    ]).model_dump(mode="json")  # fmt: skip
    old.update(schema_version=1, time_to_detect_s=101.0, rto_s=3.0, rpo_orders=None)  # v1: a span over both
    old["drill"] = {"objectives": {"time_to_detect": 10.0, "rpo_orders": 0}}
    for key in ("outage_s", "worst", "trading", "upgraded_from"):
        old.pop(key)
    for exp in old["experiments"]:
        for key in ("faults", "time_to_detect_s", "time_to_recover_s", "outage_s", "lost_orders_why",
                    "integrity", "integrity_why", "trading"):  # fmt: skip
            exp.pop(key)
        exp["lost_orders"] = 0
    for step in old["steps"]:
        step.pop("experiment")
    path = tmp_path / "drill.json"
    path.write_text(json.dumps(old))
    record = load_drill_record(path)
    assert record.upgraded_from == 1 and record.schema_version == 2
    assert record.time_to_detect_s == 1.0 and record.worst["time_to_detect_s"] == 2
    assert [e.lost_orders for e in record.experiments] == [None, None]  # v1 measured no RPO: not "0 lost"
    assert [(o.name, o.status) for o in record.objectives] == [
        ("rpo_orders", "not_checked"),
        ("time_to_detect", "held"),
    ]
    report = render_management_report(record)  # no journal can be read: rendered from the record alone
    assert "Time to detect" in report and "not checked" in report


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], None), ([2.0, 7.5, 3.0], 7.5), ([0.0], 0.0), ([2.0, None], None)],
)
def test_the_rto_of_several_faults_is_the_longest_and_unknown_if_one_never_recovered(
    values: list[float | None], expected: float | None
) -> None:
    assert longest(values) == expected


def test_an_experiment_recovered_when_its_last_fault_did_on_the_figure_its_rto_uses() -> None:
    def fault(index: int, recovery: RecoveryRecord | None) -> FaultRecord:
        return FaultRecord(index=index, kind="k", target="t", at_s=1.0, duration_s=1.0, recovery=recovery)

    early = RecoveryRecord(recovered_at=1010.0, settled_at=1030.0)
    late = RecoveryRecord(recovered_at=1020.0, settled_at=1025.0, rto_from="fault_end")  # settled counts
    journal = Journal(
        run_id="r", tool_version="t", experiment_title="t", experiment_file="e.yaml", experiment_sha256="0" * 64,
        experiment={}, stack={}, seed=1, started_at=1000.0, faults=[fault(1, early), fault(2, late), fault(3, None)],
    )  # fmt: skip
    assert recovered_at(journal) == 1025.0
    journal.faults[0].recovery = RecoveryRecord()  # never held again
    assert recovered_at(journal) is None
    journal.faults = [fault(1, None)]
    assert recovered_at(journal) is None  # nothing measured: nothing recovered
