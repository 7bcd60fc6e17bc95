"""The drill record: what one run of a drill did, the input of the management report and the history.

A drill run writes `drill.json` (atomically, like the experiment journal) into its own directory,
`<runs>/drills/<drill-run-id>/`, next to the run directories of its experiments. Times are Unix
epoch seconds. The history database keeps one `HistoryRow` per finished drill run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.journal import ObjectiveRecord, write_atomic

DRILL_RECORD_SCHEMA_VERSION = 1

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
    rto_s: float | None = Field(default=None, description="The longest RTO of its faults.")
    lost_orders: int = 0
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
    time_to_detect_s: float | None = Field(default=None, description="First fault until the 'detect' step.")
    time_to_recover_s: float | None = Field(default=None, description="First fault until the 'recover' step.")
    rto_s: float | None = Field(default=None, description="The longest RTO over the drill's experiments.")
    rpo_orders: int | None = Field(default=None, description="Acknowledged orders lost over the drill.")
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
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable drill record: {exc}") from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != DRILL_RECORD_SCHEMA_VERSION:
        raise ValueError(
            f"{path}: drill record schema_version {version!r}, this tool reads {DRILL_RECORD_SCHEMA_VERSION}"
        )
    return DrillRecord.model_validate(raw)
