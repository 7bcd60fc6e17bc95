"""The drill record: what one run of a drill did, the input of the management report and the history.

A drill run writes `drill.json` (atomically, like the experiment journal) into its own directory,
`<runs>/drills/<drill-run-id>/`, next to the run directories of its experiments. Times are Unix
epoch seconds. The history database keeps one `HistoryRow` per finished drill run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.files import LIMITS, read_json
from engine.journal import ObjectiveRecord, Status, write_atomic
from engine.model import RtoFrom

# 2: figures per experiment and per fault (the headline is the worst single one), "not checked" outcomes and
# the trading declaration. Schema-1 records are still read: drilling.figures upgrades them.
DRILL_RECORD_SCHEMA_VERSION = 2

DrillVerdict = Literal["running", "passed", "failed", "aborted", "interrupted", "error"]
StepStatus = Literal["pending", "done", "late", "missed", "skipped"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Participant(_Record):
    name: str
    role: str


class StepRecord(_Record):
    """One runbook step: when it became due, when it was satisfied and by whom."""

    id: str = Field(description="The step's id from the drill file (what `chaos.py drill ack` names).")
    title: str
    mode: Literal["auto", "manual"]
    marks: Literal["detect", "recover", "none"] = Field(
        default="none", description="'detect'/'recover': this step's time is the drill's time to detect/recover."
    )
    expected_s: float | None = Field(default=None, description="Expected time from the step becoming due.")
    due_at: float | None = Field(default=None, description="When the step became due (its predecessor was done).")
    done_at: float | None = None
    by: str | None = Field(default=None, description="Who acknowledged it: an operator, 'auto' or 'auto (CI)'.")
    auto_acknowledged: bool = Field(
        default=False, description="A manual step acknowledged automatically (--non-interactive)."
    )
    status: StepStatus = "pending"
    took_s: float | None = None
    detail: str = ""
    experiment: int | None = Field(
        default=None, description="The experiment (1-based) whose event did this automatic step; None: by time."
    )


class DrillFaultRecord(_Record):
    """One fault of one experiment and its own figures, from the experiment's journal (docs/recovery.md)."""

    index: int
    kind: str
    target: str
    status: str = ""
    injected_at: float | None = None
    ended_at: float | None = None
    detected_after_s: float | None = Field(
        default=None, description="Injection until the steady state first stopped holding (None: it never did)."
    )
    impact_s: float | None = Field(default=None, description="First deviating second until it held again.")
    from_start_s: float | None = Field(default=None, description="Injection until the steady state held again.")
    after_end_s: float | None = Field(default=None, description="Fault end until it held for stable_for seconds.")
    rto_from: RtoFrom = "fault_start"
    rto_s: float | None = Field(default=None, description="The figure the experiment's objectives.rto judges.")
    recovered: bool = False


class DrillExperimentRecord(_Record):
    """One experiment the drill ran, summarised from its journal (which stays the source of truth)."""

    file: str
    title: str = ""
    run_id: str | None = None
    journal: str | None = Field(default=None, description="Path of the experiment's journal.json.")
    report: str | None = Field(default=None, description="Path of the experiment's report.html.")
    verdict: str = "pending"
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    fault_started_at: float | None = Field(default=None, description="Injection time of its first fault.")
    faults: list[DrillFaultRecord] = Field(default_factory=list, description="Its injected faults and their figures.")
    rto_s: float | None = Field(
        default=None, description="The longest RTO of its faults; None when one never recovered or none was measured."
    )
    time_to_detect_s: float | None = Field(
        default=None, description="Its first fault until the runbook's detect step, when that step was done in it."
    )
    time_to_recover_s: float | None = Field(
        default=None, description="Its first fault until the runbook's recover step, when that step was done in it."
    )
    outage_s: float | None = Field(default=None, description="The longer of its RTO and its time to recover.")
    lost_orders: int | None = Field(default=None, description="Acknowledged orders lost; None: not checked.")
    lost_orders_why: str = Field(default="", description="Why lost orders were not checked, when they were not.")
    integrity: Status = Field(default="not_checked", description="Its integrity checks taken together.")
    integrity_why: str = Field(default="", description="What was not checked, and why.")
    trading: bool = Field(default=False, description="Its stack declares a trading system (engine.wording).")
    failed_requests: int = 0
    requests: int = 0
    peak_p99_ms: float | None = None


class DrillRecord(_Record):
    """Everything known about one drill run."""

    schema_version: int = DRILL_RECORD_SCHEMA_VERSION
    drill_run_id: str
    drill_name: str
    drill_file: str
    drill_sha256: str
    drill: dict[str, Any] = Field(description="The validated drill file, as loaded.")
    scenario: str = ""
    owner: str = ""
    participants: list[Participant] = Field(default_factory=list)
    non_interactive: bool = False
    started_at: float
    finished_at: float | None = None
    verdict: DrillVerdict = "running"
    exit_code: int | None = None
    summary: str = ""
    experiments: list[DrillExperimentRecord] = Field(default_factory=list)
    steps: list[StepRecord] = Field(default_factory=list)
    time_to_detect_s: float | None = Field(
        default=None, description="The worst single experiment's: its first fault until the 'detect' step."
    )
    time_to_recover_s: float | None = Field(
        default=None, description="The worst single experiment's: its first fault until the 'recover' step."
    )
    rto_s: float | None = Field(
        default=None, description="The longest RTO of any single fault; None when a fault never recovered."
    )
    outage_s: float | None = Field(default=None, description="The longest outage of any single experiment.")
    worst: dict[str, int] = Field(
        default_factory=dict, description="Which experiment (1-based) each headline figure comes from."
    )
    rpo_orders: int | None = Field(
        default=None, description="Acknowledged orders lost over the experiments that checked them; None: none did."
    )
    trading: bool = Field(default=False, description="The drill (or every experiment's stack) declares trading.")
    upgraded_from: int | None = Field(default=None, description="The schema version it was written in, if older.")
    objectives: list[ObjectiveRecord] = Field(default_factory=list)
    notifications: list[dict[str, Any]] = Field(default_factory=list, description="Webhook deliveries and results.")
    report: str | None = Field(default=None, description="Path of the management report (drill-report.html).")
    calendar: str = Field(default="", description="What the market-hours guard decided when the drill started.")


class HistoryRow(_Record):
    """One finished drill run as the history database keeps it."""

    drill_name: str
    drill_run_id: str
    started_at: float
    finished_at: float | None
    verdict: str
    objectives_met: int
    objectives_total: int
    rto_s: float | None
    rpo_orders: int | None
    time_to_detect_s: float | None
    time_to_recover_s: float | None
    report: str | None
    record: str = Field(description="Path of drill.json.")
    record_sha256: str = Field(description="SHA-256 of drill.json as written when the run finished.")


def save_drill_record(record: DrillRecord, path: Path) -> None:
    write_atomic(path, record.model_dump_json(indent=1) + "\n")


def load_drill_record(path: Path) -> DrillRecord:
    """Read drill.json; raises ValueError naming the file when it is not a drill record we can read."""
    raw = read_json(path, LIMITS["drill record"], "a drill record (drill.json)", "drill record")
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version == 1:
        from drilling.figures import upgrade_v1  # figures per experiment, recomputed from what v1 kept

        raw = upgrade_v1(raw)
    elif version != DRILL_RECORD_SCHEMA_VERSION:
        raise ValueError(
            f"{path}: drill record schema_version {version!r}, this tool reads {DRILL_RECORD_SCHEMA_VERSION} "
            "(and upgrades 1)"
        )
    try:
        return DrillRecord.model_validate(raw)
    except ValidationError as exc:  # one line: the first problem and how many there are
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        raise ValueError(
            f"{path}: not a valid drill record ({exc.error_count()} problem(s)); first: {where}: {first['msg']}"
        ) from None
