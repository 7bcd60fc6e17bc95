"""Drill records of realistic fake drill runs for the management report tests (built by hand).

A drill runs one experiment (a journal from report_journals, saved beside the record) and a four-step
runbook: the alert is confirmed (detect), the matcher failed over (late), trading confirmed restored
(recover), compliance notified. Times are chosen so that the RTO and time to recover can be set freely.
"""

from __future__ import annotations

from pathlib import Path

from drilling.figures import fault_figures
from drilling.record import DrillExperimentRecord, DrillRecord, HistoryRow, Participant, StepRecord
from engine.journal import Journal, ObjectiveRecord, save_journal
from tests.reports.report_journals import T0, fault_offset, make_journal

DRILL_T0 = T0 - 30.0  # the drill starts half a minute before its experiment
FAULT_AT = T0 + fault_offset(60)
DAY = 86_400.0


def step(
    step_id: str,
    title: str,
    due_at: float,
    took_s: float | None,
    expected_s: float | None,
    *,
    marks: str = "none",
    mode: str = "manual",
    status: str | None = None,
    by: str | None = "alice",
) -> StepRecord:
    done = None if took_s is None else due_at + took_s
    if status is None:
        status = "missed" if took_s is None else ("late" if expected_s is not None and took_s > expected_s else "done")
    return StepRecord.model_validate(
        {
            "id": step_id,
            "title": title,
            "mode": mode,
            "marks": marks,
            "expected_s": expected_s,
            "due_at": due_at,
            "done_at": done,
            "by": by if done is not None else None,
            "status": status,
            "took_s": took_s,
        }
    )


def make_drill(
    tmp: Path,
    *,
    verdict: str = "passed",
    rto_s: float | None = 252.0,
    time_to_detect_s: float | None = 45.0,
    time_to_recover_s: float | None = None,
    rto_target_s: float = 300.0,
    lost: int = 0,
    journal: Journal | None = None,
    with_journal: bool = True,
) -> DrillRecord:
    """A drill run whose experiment journal is written to `tmp/exp/journal.json` (unless `with_journal` is False)."""
    journal = journal or make_journal("passed")
    journal_path = tmp / "exp" / "journal.json"
    if with_journal:
        save_journal(journal, journal_path)
    ttr = time_to_recover_s if time_to_recover_s is not None else rto_s
    fault_at = next((f.injected_at for f in journal.faults if f.injected_at is not None), FAULT_AT)
    detect = step("confirm-alert", "Confirm the matcher alert fired", fault_at, time_to_detect_s, 60.0, marks="detect")
    fail_over_due = fault_at + (time_to_detect_s or 0.0)
    fail_over = step("fail-over", "Fail the matcher over to the standby", fail_over_due, 150.0, 120.0, by="bob")
    recover_due = fail_over_due + 150.0
    recover_took = None if ttr is None else max(ttr - (recover_due - fault_at), 1.0)
    recover = step("confirm-trading", "Confirm trading restored", recover_due, recover_took, 90.0, marks="recover")
    notify_due = recover_due + (recover_took or 0.0)
    notify = step("notify", "Notify compliance", notify_due, None, 600.0)
    finished = max(notify_due + 600.0, (journal.finished_at or 0.0) + 5.0)
    objectives = [
        ObjectiveRecord(
            name="rto", target=rto_target_s, observed=rto_s, unit="s", met=rto_s is not None and rto_s <= rto_target_s
        ),
        ObjectiveRecord(
            name="time_to_detect",
            target=60.0,
            observed=time_to_detect_s,
            unit="s",
            met=time_to_detect_s is not None and time_to_detect_s <= 60,
        ),
        ObjectiveRecord(name="rpo_orders", target=0, observed=lost, unit="orders", met=lost == 0),
    ]
    points = journal.metrics.get("*", [])
    known = [v for v in (rto_s, ttr) if v is not None]
    outage = max(known) if known else None
    figures = {"time_to_detect_s": time_to_detect_s, "time_to_recover_s": ttr, "rto_s": rto_s, "outage_s": outage}
    experiment = DrillExperimentRecord(
        file="experiments/matcher-leader-kill.yaml",
        title=journal.experiment_title,
        run_id=journal.run_id,
        journal=str(journal_path),
        verdict=journal.verdict,
        exit_code=journal.exit_code,
        started_at=journal.started_at,
        finished_at=journal.finished_at,
        fault_started_at=fault_at,
        faults=fault_figures(journal),
        rto_s=rto_s,
        time_to_detect_s=time_to_detect_s,
        time_to_recover_s=ttr,
        outage_s=outage,
        lost_orders=lost,
        integrity="failed" if lost else "held",
        trading=True,
        failed_requests=sum(p.fail for p in points),
        requests=sum(p.n for p in points),
        peak_p99_ms=max((p.p99 for p in points if p.p99 is not None), default=None),
    )
    return DrillRecord.model_validate(
        {
            "drill_run_id": "d-20251125T055930Z-a1",
            "drill_name": "matcher-failover",
            "drill_file": "drills/matcher-failover.yaml",
            "drill_sha256": "ab" * 32,
            "drill": {"name": "matcher-failover", "title": "Matcher fail-over during the auction"},
            "scenario": "The matcher leader dies during the morning auction",
            "owner": "trading-ops",
            "participants": [Participant(name="alice", role="incident lead"), Participant(name="bob", role="sre")],
            "started_at": DRILL_T0,
            "finished_at": finished,
            "verdict": verdict,
            "exit_code": 0 if verdict == "passed" else 1,
            "summary": f"drill {verdict}",
            "experiments": [experiment],
            "steps": [detect, fail_over, recover, notify],
            "time_to_detect_s": time_to_detect_s,
            "time_to_recover_s": ttr,
            "rto_s": rto_s,
            "outage_s": outage,
            "worst": {name: 1 for name, value in figures.items() if value is not None},
            "trading": True,
            "rpo_orders": lost,
            "objectives": objectives,
        }
    )


def history_row(record: DrillRecord, days_ago: float = 0.0, **changes: object) -> HistoryRow:
    """The history row of `record`, moved `days_ago` into the past, with any field replaced."""
    met = sum(o.met for o in record.objectives)
    row = HistoryRow(
        drill_name=record.drill_name,
        drill_run_id=record.drill_run_id,
        started_at=record.started_at - days_ago * DAY,
        finished_at=None if record.finished_at is None else record.finished_at - days_ago * DAY,
        verdict=record.verdict,
        objectives_met=met,
        objectives_total=len(record.objectives),
        rto_s=record.rto_s,
        rpo_orders=record.rpo_orders,
        time_to_detect_s=record.time_to_detect_s,
        time_to_recover_s=record.time_to_recover_s,
        report=None,
        record="drill.json",
        record_sha256="cd" * 32,
    )
    return row.model_copy(update=changes)


def make_history(record: DrillRecord, past: list[tuple[str, float]]) -> list[HistoryRow]:
    """Past runs (verdict, RTO) a month apart, oldest first, then `record` itself."""
    rows = [
        history_row(record, days_ago=30.0 * (len(past) - i), drill_run_id=f"d-past-{i}", verdict=verdict, rto_s=rto)
        for i, (verdict, rto) in enumerate(past)
    ]
    return [*rows, history_row(record)]
