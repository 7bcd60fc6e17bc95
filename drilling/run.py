"""One run of a drill: its experiments in order (through engine.api), the runbook live, the drill record.

The record (`<runs>/drills/<drill-run-id>/drill.json`) is rewritten atomically on every change, so a
killed drill still leaves what it knew. `DrillRunner` puts together the drill's collaborators: the
shared state and its lock (drilling.state), the experiments (drilling.experiments, events through
drilling.listener), the manual steps and their acknowledgements (drilling.steps) and the verdict
(drilling.verdict, by engine.verdict's rules); `finish_drill` then notifies, reports and records history.
"""

from __future__ import annotations

import datetime
import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from drilling.display import DrillConsole
from drilling.experiments import ExperimentReports, ExperimentSeries, RunFunction
from drilling.history import History
from drilling.model import Drill, DrillPlan, calendar_summary, open_market, redact_url
from drilling.notify import delivery_line, notify
from drilling.record import (
    DrillExperimentRecord,
    DrillRecord,
    HistoryRow,
    Participant,
    save_drill_record,
)
from drilling.runbook import Runbook
from drilling.state import DrillState
from drilling.steps import StepServices
from engine.api import RunOptions, RunOutcome, new_run_id, run_experiment
from engine.errors import GuardRefusedError
from engine.guards import GuardOptions, Override

__all__ = [
    "RECORD_FILE",
    "REPORT_FILE",
    "DrillOptions",
    "DrillOutcome",
    "DrillRunner",
    "ExperimentReports",
    "ReportWriter",
    "RunFunction",
    "check_calendar",
    "experiment_options",
    "finish_drill",
    "market_override",
    "run_drill",
    "sha256_file",
]

RECORD_FILE = "drill.json"
REPORT_FILE = "drill-report.html"

ReportWriter = Callable[[DrillRecord, Path, Sequence[HistoryRow]], Path]  # write_management_report


@dataclass(frozen=True)
class DrillOptions:
    runs_dir: Path = Path("runs")
    stack_dir: Path | None = None
    stack_up: bool = False
    seed: int | None = None
    non_interactive: bool = False
    ack_timeout_s: float = 600.0  # after the experiments, how long to wait for manual steps
    web: bool = True
    quiet: bool = False
    guards: GuardOptions = field(default_factory=GuardOptions)  # production consent, market-hours override
    live: bool | None = None  # the rich view; None: when the output is a terminal


@dataclass
class DrillOutcome:
    plan: DrillPlan
    record: DrillRecord
    drill_dir: Path
    runs: list[RunOutcome] = field(default_factory=list)
    report_error: str | None = None

    @property
    def record_path(self) -> Path:
        return self.drill_dir / RECORD_FILE

    @property
    def exit_code(self) -> int:
        assert self.record.exit_code is not None
        return self.record.exit_code


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recordable(drill: Drill) -> dict[str, Any]:
    """The drill as recorded: webhook URLs redacted (they often carry tokens)."""
    data = drill.model_dump(mode="json")
    for target in data.get("notify", []):
        target["webhook"] = redact_url(target["webhook"])
    return data


def new_record(plan: DrillPlan, runbook: Runbook, non_interactive: bool) -> DrillRecord:
    """The record of a drill run about to start: the drill as recorded, its experiments and steps all pending."""
    drill = plan.drill
    record = DrillRecord(
        drill_run_id=new_run_id(drill.name, "drill"),
        drill_name=drill.name,
        drill_file=str(plan.path),
        drill_sha256=plan.document.sha256,
        drill=_recordable(drill),
        scenario=drill.scenario,
        owner=drill.owner,
        participants=[Participant(name=p.name, role=p.role) for p in drill.participants],
        non_interactive=non_interactive,
        started_at=time.time(),
        experiments=[DrillExperimentRecord(file=rel) for rel in drill.experiments],
        steps=runbook.records,
    )
    for exp, sub in zip(record.experiments, plan.experiments, strict=False):
        exp.title = sub.experiment.title
    return record


def market_override(drill: Drill, options: DrillOptions) -> Override | None:
    """The override passed to every experiment's market-hours guard: the command line's, else the file's."""
    if options.guards.market_hours is not None:
        return options.guards.market_hours
    calendar = drill.calendar
    return Override(reason=f"drill {drill.name}: {calendar.reason}") if calendar.override else None


def check_calendar(plan: DrillPlan, override: Override | None, now: datetime.datetime | None = None) -> str:
    """What the drill's market-hours guard decides now; raises GuardRefusedError when the drill must not start.

    The calendars are the drill file's own, or by default those of the stacks its experiments run on."""
    calendars = plan.calendars()
    reason = open_market(calendars, now or datetime.datetime.now(datetime.UTC))
    if reason is None:
        if any(hours is not None for _, hours in calendars):
            return f"outside market hours — {calendar_summary(calendars)}"
        return f"no market hours apply — {calendar_summary(calendars)}"
    if override is not None:
        return f"{reason}; run anyway by {override.who()}: {override.reason}"
    raise GuardRefusedError(
        f"drill {plan.drill.name!r} not started: {reason}. Drills run outside trading hours; to run "
        "now deliberately set calendar.override with a reason in the drill file, or pass "
        "--ignore-market-hours --reason TEXT"
    )


def experiment_options(options: DrillOptions, override: Override | None) -> RunOptions:
    """The options every experiment of the drill runs (or dry-runs) with: the drill's, and its calendar override."""
    guards = GuardOptions(production=options.guards.production, market_hours=override, now=options.guards.now)
    return RunOptions(
        runs_dir=options.runs_dir,
        stack_dir=options.stack_dir,
        stack_up=options.stack_up,
        seed=options.seed,
        quiet=options.quiet,
        guards=guards,
    )


class DrillRunner:
    """Runs one drill; `execute()` returns when the experiments ran and the runbook is closed."""

    def __init__(
        self,
        plan: DrillPlan,
        options: DrillOptions,
        *,
        out: TextIO | None = None,
        run: RunFunction = run_experiment,
        experiment_reports: ExperimentReports | None = None,
    ) -> None:
        self.plan, self.drill, self.options = plan, plan.drill, options
        runbook = Runbook(list(self.drill.runbook), non_interactive=options.non_interactive)
        self.record = new_record(plan, runbook, options.non_interactive)
        self.drill_dir = (options.runs_dir / "drills" / self.record.drill_run_id).resolve()
        self.console = DrillConsole(out or sys.stderr, self.record.started_at, self._use_rich(out or sys.stderr))
        self.state = DrillState(self.drill, self.record, runbook, self.drill_dir / RECORD_FILE, self.console.say)
        self.steps = StepServices(self.drill, self.record.drill_run_id, self.drill_dir, self.state, self.console)
        self.override = market_override(self.drill, options)
        run_options = experiment_options(options, self.override)
        self.experiments = ExperimentSeries(plan, self.state, run_options, run, experiment_reports)

    def _use_rich(self, out: TextIO) -> bool:
        if self.options.live is not None:
            return self.options.live
        isatty = getattr(out, "isatty", None)
        return bool(isatty and isatty())

    def execute(self) -> DrillOutcome:
        """Run the drill; raises GuardRefusedError (nothing started), else the verdict is in the record."""
        self.record.calendar = check_calendar(self.plan, self.override, self.options.guards.now)
        self.drill_dir.mkdir(parents=True, exist_ok=True)
        outcome = DrillOutcome(self.plan, self.record, self.drill_dir, self.experiments.runs)
        self.console.say(
            [
                f"drill {self.drill.name} ({self.drill.title}) run {self.record.drill_run_id}",
                f"record: {self.drill_dir / RECORD_FILE}",
            ]
        )
        self.record.notifications += notify(self.drill.notify, "started", self.record)
        self.console.say([delivery_line(n) for n in self.record.notifications])
        interrupted = False
        with self.steps.serving(page=self.options.web and not self.options.non_interactive):
            self.state.start_runbook()
            try:
                if self.experiments.execute():
                    raise KeyboardInterrupt  # an experiment was interrupted: so is the drill
                self.state.close_conditions()
                self.steps.wait_for_acks(self.options.ack_timeout_s)
            except KeyboardInterrupt:
                interrupted = True
                self.state.interrupt()
            self.state.close()
        self.state.conclude(interrupted)
        return outcome


def run_drill(
    plan: DrillPlan,
    options: DrillOptions,
    *,
    out: TextIO | None = None,
    run: RunFunction = run_experiment,
    experiment_reports: ExperimentReports | None = None,
) -> DrillOutcome:
    """Run a validated drill. GuardRefusedError means nothing was started; else see the record."""
    return DrillRunner(plan, options, out=out, run=run, experiment_reports=experiment_reports).execute()


def _row(record: DrillRecord, record_path: Path) -> HistoryRow:
    return HistoryRow(
        drill_name=record.drill_name,
        drill_run_id=record.drill_run_id,
        started_at=record.started_at,
        finished_at=record.finished_at,
        verdict=record.verdict,
        objectives_met=sum(1 for o in record.objectives if o.met),
        objectives_total=len(record.objectives),
        rto_s=record.rto_s,
        rpo_orders=record.rpo_orders,
        time_to_detect_s=record.time_to_detect_s,
        time_to_recover_s=record.time_to_recover_s,
        report=record.report,
        record=str(record_path),
        record_sha256=sha256_file(record_path),
    )


def finish_drill(
    outcome: DrillOutcome, history: History, write_report: ReportWriter | None, out: TextIO | None = None
) -> HistoryRow:
    """After the run: the finish notification, the final record and its SHA-256, the report, the history row.

    The report path is decided before the finish webhook is sent, so the webhook, the record and the
    history row all name it; the report is given the history including this run's row.
    """
    stream = out or sys.stderr
    record = outcome.record
    planned = outcome.drill_dir / REPORT_FILE
    record.report = str(planned) if write_report is not None else None
    deliveries = notify(outcome.plan.drill.notify, "finished", record)
    record.notifications += deliveries
    for result in deliveries:
        print(delivery_line(result), file=stream, flush=True)
    save_drill_record(record, outcome.record_path)
    row = _row(record, outcome.record_path)
    if write_report is not None:
        try:
            written = write_report(record, outcome.drill_dir, [*history.runs(record.drill_name), row])
        except Exception as exc:  # the drill's result must be recorded even when its report cannot be
            outcome.report_error = f"{type(exc).__name__}: {exc}"
            written = None
        if written is None or written.resolve() != planned.resolve():
            record.report = str(written) if written is not None else None
            save_drill_record(record, outcome.record_path)
            row = _row(record, outcome.record_path)
    history.add(row)
    return row
