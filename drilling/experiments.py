"""A drill's experiments, one after the other through engine.api, each summarised into the drill record.

Each runs in the main thread (the engine's runner handles signals) with its own event bus, whose
events drive the runbook (drilling.listener). The series stops after an experiment that was
interrupted (so is the drill), could not run, or left a fault in place: the system may be broken.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drilling import figures
from drilling.listener import ExperimentListener
from drilling.model import DrillPlan
from drilling.record import DrillExperimentRecord
from drilling.runbook import Occurrence
from drilling.state import DrillState
from engine.api import RunOptions, RunOutcome
from engine.errors import ChaosError, ExitCode
from engine.events import EventBus
from engine.journal import Journal

RunFunction = Callable[[Path, RunOptions, EventBus], RunOutcome]
ExperimentReports = Callable[[RunOutcome], Path | None]


def closing_occurrences(number: int, exp: DrillExperimentRecord, journal: Journal) -> list[Occurrence]:
    """What the journal tells the runbook once the experiment is over: recovered (if every fault did), finished."""
    found = []
    recovered = figures.recovered_at(journal)
    if exp.rto_s is not None and recovered is not None:
        found.append(Occurrence("recovered", number, recovered, f"RTO {exp.rto_s:g}s"))
    finished = journal.finished_at or time.time()
    return [*found, Occurrence("experiment_finished", number, finished, journal.verdict)]


@dataclass
class ExperimentSeries:
    """Runs the plan's experiments in order; `runs` collects their outcomes."""

    plan: DrillPlan
    state: DrillState
    options: RunOptions
    run: RunFunction
    reports: ExperimentReports | None = None
    runs: list[RunOutcome] = field(default_factory=list, init=False)

    def execute(self) -> bool:
        """Run the experiments in order; True when one was interrupted (the drill stops then)."""
        for index in range(len(self.plan.drill.experiments)):
            result = self._one(index)
            if result is None:
                return False  # could not run
            code = result.journal.exit_code
            if code == ExitCode.INTERRUPTED:
                return True
            if code in (ExitCode.ROLLBACK_FAILED, ExitCode.CANNOT_RUN):
                return False  # the system may be broken: no further experiment
        return False

    def _one(self, index: int) -> RunOutcome | None:
        number, count = index + 1, len(self.plan.drill.experiments)
        exp = self.state.experiment(index)
        exp.verdict, exp.started_at = "running", time.time()
        self.state.set_phase(f"experiment {number}/{count}: starting")
        self.state.update_experiment(index, exp, [f"experiment {number}: {exp.title} ({exp.file})"])
        bus = EventBus()
        bus.subscribe(ExperimentListener(self.state, number, count))
        try:
            result = self.run(self.plan.experiment_path(index), self.options, bus)
        except ChaosError as exc:
            exp = self.state.experiment(index)
            exp.verdict, exp.exit_code, exp.finished_at = "error", exc.exit_code, time.time()
            why = f"experiment {number} could not run: {exc}"
            self.state.update_experiment(index, exp, [why], summary=why)
            return None
        self.runs.append(result)
        report = self.reports(result) if self.reports is not None else None
        journal = result.journal
        exp = self.state.experiment(index)
        figures.summarize(exp, journal, result.journal_path)
        exp.report = str(report) if report is not None else None
        line = f"experiment {number}: {journal.verdict.upper()} — {journal.summary}"
        self.state.update_experiment(index, exp, [line], closing_occurrences(number, exp, journal))
        return result
