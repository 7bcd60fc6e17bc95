"""What one drill run's threads share: its record, runbook and phase, behind the one lock this object owns.

Experiments run in the main thread; the ticker thread (acknowledgements) and the ack page's threads
read and change the same runbook and record. Every change goes through a method here: it holds the
lock for the change, lets a non-interactive runbook acknowledge what fell due, saves the record when
anything changed and prints the lines for the console outside the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from drilling import figures, verdict
from drilling.ack import Ack
from drilling.model import Drill
from drilling.record import DrillExperimentRecord, DrillRecord, save_drill_record
from drilling.runbook import Occurrence, Runbook

Say = Callable[[list[str]], None]


class DrillState:
    """The drill's shared state; its methods are the only way to read or change it while the drill runs."""

    def __init__(self, drill: Drill, record: DrillRecord, runbook: Runbook, record_path: Path, say: Say) -> None:
        self._lock = threading.RLock()
        self._drill = drill
        self._record = record
        self._runbook = runbook
        self._path = record_path
        self._say = say
        self._phase = "starting"
        self.page: str | None = None  # the ack page's URL while it is served

    # -- reads ----------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A snapshot for the live view and the web page."""
        with self._lock:
            steps = [
                {**record.model_dump(mode="json"), "how": f"auto: {step.when}" if step.when else "manual"}
                for step, record in zip(self._drill.runbook, self._runbook.records, strict=True)
            ]
            return {
                "drill": self._drill.name,
                "title": self._drill.title,
                "drill_run_id": self._record.drill_run_id,
                "phase": self._phase,
                "started_at": self._record.started_at,
                "current": self._runbook.current(),
                "steps": steps,
                "page": self.page,
            }

    def check_ack(self, step_id: str) -> str | None:
        """Why acknowledging `step_id` would be refused now, or None."""
        with self._lock:
            return self._runbook.check_ack(step_id)

    def pending_steps(self) -> list[str] | None:
        """The ids of the steps still pending; None once every step has finished."""
        with self._lock:
            if self._runbook.all_finished():
                return None
            return [r.id for r in self._runbook.records if r.status == "pending"]

    def experiment(self, index: int) -> DrillExperimentRecord:
        """A copy of experiment `index`'s summary, to change and hand back with `update_experiment`."""
        with self._lock:
            return self._record.experiments[index].model_copy(deep=True)

    # -- changes --------------------------------------------------------------------------------
    def set_phase(self, phase: str) -> None:
        with self._lock:
            self._phase = phase

    def save(self) -> None:
        with self._lock:
            figures.derive(self._record, self._drill.trading)  # per experiment; the headline is the worst single one
            save_drill_record(self._record, self._path)

    def changed(self, lines: Sequence[str] = ()) -> None:
        """After any change: non-interactive acknowledgements, the record, the console."""
        with self._lock:
            shown = [*lines, *self._runbook.tick(time.time())]
            if shown:
                self.save()
        self._say(shown)

    def start_runbook(self) -> None:
        with self._lock:
            lines = self._runbook.start(self._record.started_at)
        self.changed(lines)

    def observe(self, occurrence: Occurrence) -> None:
        with self._lock:
            lines = self._runbook.observe(occurrence, time.time())
        self.changed(lines)

    def acknowledge(self, acks: Sequence[Ack]) -> None:
        with self._lock:
            lines = [line for ack in acks for line in self._runbook.ack(ack.step, ack.by, ack.t, ack.source)]
        self.changed(lines)

    def close_conditions(self) -> None:
        """The experiments are over: automatic steps still pending are missed."""
        with self._lock:
            self._phase = "closing the runbook"
            lines = self._runbook.close_conditions(time.time())
        self.changed(lines)

    def interrupt(self) -> None:
        with self._lock:
            self._phase = "interrupted"
            lines = self._runbook.close(time.time(), "skipped", "the drill was interrupted")
        self.changed(lines)

    def close(self) -> None:
        """Every step not finished yet is missed: nobody acknowledged it in time."""
        with self._lock:
            lines = self._runbook.close(time.time())
        self.changed(lines)

    def update_experiment(
        self,
        index: int,
        exp: DrillExperimentRecord,
        lines: Sequence[str],
        occurrences: Sequence[Occurrence] = (),
        summary: str | None = None,
    ) -> None:
        """Put experiment `index`'s new summary in the record (and the drill's, if given), then what it brought."""
        with self._lock:
            self._record.experiments[index] = exp
            if summary is not None:
                self._record.summary = summary
            found = [line for occ in occurrences for line in self._runbook.observe(occ, time.time())]
        self.changed([*found, *lines])

    def conclude(self, interrupted: bool) -> None:
        """The verdict (drilling.verdict), then the final save."""
        with self._lock:
            verdict.conclude(self._record, self._drill, interrupted)
            self.save()
