"""The end of a drill run: its figures and objectives, then the verdict by engine.verdict's drill rules."""

from __future__ import annotations

import time

from drilling import figures
from drilling.model import Drill
from drilling.record import DrillRecord
from engine.verdict import decide_drill


def conclude(record: DrillRecord, drill: Drill, interrupted: bool) -> None:
    """Fill in the finish time, the worst figures, the objectives, the verdict, exit code and summary."""
    record.finished_at = time.time()
    figures.derive(record, drill.trading)
    for exp in record.experiments:
        if exp.verdict == "pending":
            exp.verdict = "skipped"
    record.objectives = figures.objectives(drill.objectives.model_dump(), record)
    # The summary so far is why an experiment could not run, when one could not (drilling.experiments).
    record.verdict, record.exit_code, record.summary = decide_drill(
        record.experiments, record.objectives, record.steps, interrupted=interrupted, could_not_run=record.summary
    )
