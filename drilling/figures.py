"""A drill's figures, per fault and per experiment; the drill's headline is the worst single one (docs/drills.md).

Nothing here spans experiments: a runbook step marked `detect` or `recover` is measured from the
first fault of the experiment it was done in (the one whose event did an automatic step, else the
one running when it was acknowledged), and only when that fault came before it. An experiment's
outage is the longer of its RTO and its time to recover; the drill's figures are the largest of
those, each naming its experiment. Lost orders count only where they were reconciled.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drilling.record import DrillExperimentRecord, DrillFaultRecord, DrillRecord, StepRecord
from engine.integrity_rpo import PERSISTED as PERSISTED  # re-exported: drills name the check
from engine.integrity_rpo import measured_loss
from engine.journal import Journal, ObjectiveRecord, RecoveryRecord, Status
from engine.wording import declares_trading

HEADLINE = ("time_to_detect_s", "time_to_recover_s", "rto_s", "outage_s")
DONE = ("done", "late")


def recovery_time(rec: RecoveryRecord) -> float | None:
    """When the fault counted as recovered for its RTO: held again, or settled after its end (rto_from)."""
    return rec.recovered_at if rec.rto_from == "fault_start" else rec.settled_at


def longest(values: Sequence[float | None]) -> float | None:
    """The aggregate of per-fault RTO figures: the largest; None when there is none, or one never recovered."""
    if not values or any(v is None for v in values):
        return None
    return max(v for v in values if v is not None)


def recovered_at(journal: Journal) -> float | None:
    """When the last of an experiment's faults recovered for its RTO; None when one never did (or none was measured)."""
    return longest([recovery_time(f.recovery) for f in journal.faults if f.recovery is not None])


def fault_figures(journal: Journal) -> list[DrillFaultRecord]:
    faults = []
    for f in journal.faults:
        rec = f.recovery
        if f.injected_at is None or rec is None:
            continue
        detected = None if rec.degraded_at is None else round(rec.degraded_at - f.injected_at, 3)
        faults.append(
            DrillFaultRecord(
                index=f.index,
                kind=f.kind,
                target=f.target,
                status=f.status,
                injected_at=f.injected_at,
                ended_at=f.ended_at,
                detected_after_s=detected,
                impact_s=rec.impact_s,
                from_start_s=rec.from_start_s,
                after_end_s=rec.after_end_s,
                rto_from=rec.rto_from,
                rto_s=rec.rto_s,
                recovered=rec.recovered,
            )
        )
    return faults


def _integrity(journal: Journal) -> tuple[Status, str]:
    records = journal.integrity
    if not records:
        return "not_checked", "no integrity check ran"
    if any(r.status == "failed" for r in records):
        return "failed", ""
    unchecked = [f"{r.name} ({r.why or r.error})" for r in records if r.status != "held"]
    return ("not_checked", "; ".join(unchecked)) if unchecked else ("held", "")


def summarize(exp: DrillExperimentRecord, journal: Journal, journal_path: Path) -> None:
    """Fill an experiment's drill summary from its journal (which stays the source of truth)."""
    exp.run_id, exp.journal, exp.title = journal.run_id, str(journal_path), journal.experiment_title
    exp.verdict, exp.exit_code = journal.verdict, journal.exit_code
    exp.started_at, exp.finished_at = journal.started_at, journal.finished_at
    exp.fault_started_at = min((f.injected_at for f in journal.faults if f.injected_at is not None), default=None)
    exp.faults = fault_figures(journal)
    exp.rto_s = longest([f.rto_s for f in exp.faults])
    # On the check the RPO rests on (engine.integrity_rpo): a sample or unchecked ids count nothing.
    exp.lost_orders, exp.lost_orders_why = measured_loss(journal)
    exp.integrity, exp.integrity_why = _integrity(journal)
    exp.trading = declares_trading(journal.stack)
    points = journal.metrics.get("*", [])
    exp.requests = sum(p.n for p in points)
    exp.failed_requests = sum(p.fail for p in points)
    exp.peak_p99_ms = max((p.p99 for p in points if p.p99 is not None), default=None)


def attribute(step: StepRecord, experiments: Sequence[DrillExperimentRecord]) -> int | None:
    """The experiment (1-based) a done step belongs to: its event's, else the last one started before it."""
    if step.experiment is not None:
        return step.experiment
    if step.done_at is None:
        return None
    started = [i for i, e in enumerate(experiments) if e.started_at is not None and e.started_at <= step.done_at]
    return started[-1] + 1 if started else None


def since_fault(step: StepRecord, exp: DrillExperimentRecord) -> float | None:
    """A done step's time since its experiment's first fault; None when no fault of it came before the step."""
    if step.done_at is None or step.status not in DONE:
        return None
    if exp.fault_started_at is None or exp.fault_started_at > step.done_at:
        return None
    return round(step.done_at - exp.fault_started_at, 3)


def derive(record: DrillRecord, drill_trading: bool | None = None) -> None:
    """Per-experiment times to detect and recover and outages, then the drill's worst single figures."""
    exps = record.experiments
    for exp in exps:
        exp.time_to_detect_s = exp.time_to_recover_s = None
    for mark, attr in (("detect", "time_to_detect_s"), ("recover", "time_to_recover_s")):
        for step in record.steps:
            number = attribute(step, exps) if step.marks == mark else None
            if number is not None and 1 <= number <= len(exps):
                setattr(exps[number - 1], attr, since_fault(step, exps[number - 1]))
    for exp in exps:
        known = [v for v in (exp.rto_s, exp.time_to_recover_s) if v is not None]
        unrecovered = any(not f.recovered for f in exp.faults)
        exp.outage_s = None if unrecovered or not known else max(known)
    record.worst = {}
    for name in HEADLINE:
        values = [(getattr(e, name), i + 1) for i, e in enumerate(exps) if getattr(e, name) is not None]
        worst = max(values, default=None)
        setattr(record, name, None if worst is None else worst[0])
        if worst is not None:
            record.worst[name] = worst[1]
    if any(not f.recovered for e in exps for f in e.faults):
        record.rto_s = record.outage_s = None  # a fault that never recovered has no largest RTO below it
        record.worst.pop("rto_s", None)
        record.worst.pop("outage_s", None)
    checked = [e.lost_orders for e in exps if e.lost_orders is not None]
    record.rpo_orders = sum(checked) if checked else None
    ran = [e for e in exps if e.run_id is not None]
    if drill_trading is not None:
        record.trading = drill_trading
    else:
        record.trading = bool(ran) and all(e.trading for e in ran)


def _unrecovered(record: DrillRecord) -> str:
    stuck = [
        f"fault #{f.index} of experiment {i + 1}"
        for i, e in enumerate(record.experiments)
        for f in e.faults
        if not f.recovered
    ]
    return f"{', '.join(stuck)} never recovered" if stuck else "no fault recovery was measured"


def _rpo_objective(target: float, record: DrillRecord) -> ObjectiveRecord:
    ran = [(i + 1, e) for i, e in enumerate(record.experiments) if e.run_id is not None]
    unchecked = [f"experiment {n}: {e.lost_orders_why}" for n, e in ran if e.lost_orders is None]
    lost = record.rpo_orders
    if lost is not None and lost > target:
        status: Status = "failed"
    elif lost is not None and not unchecked:
        status = "held"
    else:
        status = "not_checked"
    why = "; ".join(unchecked) if unchecked else ("no experiment reconciled its orders" if lost is None else "")
    detail = why if lost is None else f"{lost:g} lost in the experiments that checked" + (f"; {why}" if why else "")
    return ObjectiveRecord(
        name="rpo_orders", target=target, observed=lost, unit="orders", status=status, why=why, detail=detail
    )


def _timed(name: str, target: float, observed: float | None, why: str, fails_unmeasured: bool) -> ObjectiveRecord:
    if observed is None:
        status: Status = "failed" if fails_unmeasured else "not_checked"
        return ObjectiveRecord(name=name, target=target, observed=None, unit="s", status=status, why=why, detail=why)
    status = "held" if observed <= target else "failed"
    detail = f"{observed:g}s {'≤' if status == 'held' else '>'} {target:g}s"
    return ObjectiveRecord(name=name, target=target, observed=observed, unit="s", status=status, detail=detail)


def objectives(targets: dict[str, Any], record: DrillRecord) -> list[ObjectiveRecord]:
    """The drill's objectives on its worst single figures; each omitted objective is not judged."""
    found = []
    where = {name: f" (experiment {n})" for name, n in record.worst.items()}
    if isinstance(targets.get("rto"), int | float):
        unrecovered = any(not f.recovered for e in record.experiments for f in e.faults) or any(
            e.fault_started_at is not None and e.rto_s is None and not e.faults for e in record.experiments
        )  # the second: schema-1 records kept no faults, only None for an experiment that never recovered
        found.append(_timed("rto", float(targets["rto"]), record.rto_s, _unrecovered(record), unrecovered))
    if isinstance(targets.get("rpo_orders"), int):
        found.append(_rpo_objective(float(targets["rpo_orders"]), record))
    for name, attr, mark in (
        ("time_to_detect", "time_to_detect_s", "detect"),
        ("time_to_recover", "time_to_recover_s", "recover"),
    ):
        if isinstance(targets.get(name), int | float):
            why = f"the '{mark}' step was not done after a fault of the experiment it was done in"
            objective = _timed(name, float(targets[name]), getattr(record, attr), why, False)
            objective.detail += where.get(attr, "")
            found.append(objective)
    for objective in found:
        if objective.name == "rto":
            objective.detail += where.get("rto_s", "")
    return found


def upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 drill record as schema-2 data: per-experiment figures recomputed from its steps and experiments.

    Schema 1 kept no faults per experiment and no integrity outcome: lost orders count as checked only where
    the record's drill-wide RPO was measured, and the trading declaration is read from the journals by the report.
    """
    data = {**raw, "schema_version": 2, "upgraded_from": 1}
    measured = raw.get("rpo_orders") is not None
    experiments = []
    for exp in raw.get("experiments") or []:
        exp = dict(exp)
        if not measured:
            exp["lost_orders"], exp["lost_orders_why"] = None, "not recorded (schema 1)"
        exp.setdefault("integrity", "not_checked")
        exp.setdefault("integrity_why", "not recorded (schema 1)")
        experiments.append(exp)
    data["experiments"] = experiments
    record = DrillRecord.model_validate({**data, "objectives": []})
    derive(record, drill_trading=None)  # schema 1 kept each experiment's own longest RTO: still true
    if any(e.fault_started_at is not None and e.rto_s is None for e in record.experiments):
        record.rto_s = record.outage_s = None  # schema 1 wrote None there for a fault that never recovered
        record.worst = {k: v for k, v in record.worst.items() if k not in ("rto_s", "outage_s")}
    drill = raw.get("drill")
    targets = drill.get("objectives") if isinstance(drill, dict) else None
    record.objectives = objectives(_seconds(targets if isinstance(targets, dict) else {}), record)
    return record.model_dump(mode="json")


def _seconds(targets: dict[str, Any]) -> dict[str, Any]:
    """Drill-file objectives as recorded (durations as '15s' strings) in seconds."""
    from engine.durations import parse_duration

    out: dict[str, Any] = {}
    for key, value in targets.items():
        out[key] = parse_duration(value) if isinstance(value, str) else value
    return out
