"""One run of a drill: its experiments in order (through engine.api), the runbook live, the drill record.

The record (`<runs>/drills/<drill-run-id>/drill.json`) is rewritten atomically on every change, so a
killed drill still leaves what it knew. Experiments run in the main thread (the runner handles
signals); a ticker thread reads acknowledgements and keeps the record and the console current.
"""

from __future__ import annotations

import datetime
import hashlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from drilling import figures
from drilling.ack import LIVE_FILE as _LIVE_FILE
from drilling.ack import AckInbox, AckServer, write_live
from drilling.display import DrillConsole, RunbookView
from drilling.history import History
from drilling.model import Drill, DrillPlan, redact_url
from drilling.notify import notify
from drilling.record import (
    DrillExperimentRecord,
    DrillRecord,
    HistoryRow,
    Participant,
    save_drill_record,
)
from drilling.runbook import Occurrence, Runbook
from engine.api import RunOptions, RunOutcome, new_run_id, run_experiment
from engine.durations import format_duration
from engine.errors import ChaosError, ExitCode, GuardRefusedError
from engine.events import (
    Event,
    EventBus,
    FaultInjected,
    FaultRolledBack,
    LoadStarted,
    PhaseStarted,
    ProbeObserved,
    RunFinished,
)
from engine.guards import GuardOptions, Override, market_open
from engine.journal import Journal

RECORD_FILE = "drill.json"
REPORT_FILE = "drill-report.html"
TICK_S = 0.2

RunFunction = Callable[[Path, RunOptions, EventBus], RunOutcome]
ExperimentReports = Callable[[RunOutcome], Path | None]
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


# -- experiment summaries and derived figures -------------------------------------------------------
def _recordable(drill: Drill) -> dict[str, Any]:
    """The drill as recorded: webhook URLs redacted (they often carry tokens)."""
    data = drill.model_dump(mode="json")
    for target in data.get("notify", []):
        target["webhook"] = redact_url(target["webhook"])
    return data


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
        self.plan = plan
        self.drill = plan.drill
        self.options = options
        self.out = out or sys.stderr
        self.run = run
        self.experiment_reports = experiment_reports
        self.lock = threading.RLock()
        self.runbook = Runbook(list(self.drill.runbook), non_interactive=options.non_interactive)
        self.journals: list[Journal] = []
        self.phase = "starting"
        self.server: AckServer | None = None
        self._stop = threading.Event()
        run_id = new_run_id(self.drill.name, "drill")
        self.drill_dir = (options.runs_dir / "drills" / run_id).resolve()
        self.record = DrillRecord(
            drill_run_id=run_id,
            drill_name=self.drill.name,
            drill_file=str(plan.path),
            drill_sha256=plan.document.sha256,
            drill=_recordable(self.drill),
            scenario=self.drill.scenario,
            owner=self.drill.owner,
            participants=[Participant(name=p.name, role=p.role) for p in self.drill.participants],
            non_interactive=options.non_interactive,
            started_at=time.time(),
            experiments=[DrillExperimentRecord(file=rel) for rel in self.drill.experiments],
            steps=self.runbook.records,
        )
        for exp, sub in zip(self.record.experiments, plan.experiments, strict=False):
            exp.title = sub.experiment.title
        self.console = DrillConsole(self.out, self.record.started_at, self._use_rich())

    def _use_rich(self) -> bool:
        if self.options.live is not None:
            return self.options.live
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    # -- the record ------------------------------------------------------------------------
    def save(self) -> None:
        with self.lock:
            self._derive()
            save_drill_record(self.record, self.drill_dir / RECORD_FILE)

    def _derive(self) -> None:
        figures.derive(self.record, self.drill.trading)  # per experiment; the headline is the worst single one

    def state(self) -> dict[str, Any]:
        """A snapshot for the live view and the web page."""
        with self.lock:
            steps = []
            for step, record in zip(self.drill.runbook, self.runbook.records, strict=True):
                steps.append(
                    {
                        **record.model_dump(mode="json"),
                        "how": f"auto: {step.when}" if step.when else "manual",
                    }
                )
            return {
                "drill": self.drill.name,
                "title": self.drill.title,
                "drill_run_id": self.record.drill_run_id,
                "phase": self.phase,
                "started_at": self.record.started_at,
                "current": self.runbook.current(),
                "steps": steps,
                "page": self.server.url if self.server is not None else None,
            }

    def _changed(self, lines: list[str]) -> None:
        """After any change: non-interactive acknowledgements, the record, the console."""
        with self.lock:
            lines = lines + self.runbook.tick(time.time())
            if lines:
                self.save()
        self.console.say(lines)

    # -- events from the experiments ---------------------------------------------------------
    def _listener(self, number: int) -> Callable[[Event], None]:
        state = {"faulted": False, "failing": False}
        injected: list[float] = []

        def occur(condition: str, t: float, detail: str = "") -> None:
            with self.lock:
                lines = self.runbook.observe(Occurrence(condition, number, t, detail), time.time())
            self._changed(lines)

        def listener(event: Event) -> None:
            if isinstance(event, PhaseStarted):
                with self.lock:
                    self.phase = f"experiment {number}/{len(self.drill.experiments)}: {event.phase}"
            elif isinstance(event, LoadStarted):
                occur("load_started", event.t)
            elif isinstance(event, FaultInjected) and event.ok:
                state["faulted"] = True
                injected.append(event.t)
                occur("fault_injected", event.t, f"#{event.index} {event.kind} on {event.target}")
            elif isinstance(event, ProbeObserved):
                # The live judge runs a second behind: a second that ended before the injection is not detection.
                after_fault = bool(injected) and event.second + 1 > injected[0]
                if not event.ok and state["faulted"] and after_fault and not state["failing"]:
                    state["failing"] = True
                    occur("steady_state_failed", event.t, ", ".join(event.failing))
                elif event.ok and state["failing"]:
                    state["failing"] = False
                    occur("steady_state_restored", event.t)
            elif isinstance(event, FaultRolledBack) and event.ok and event.verified:
                occur("fault_rolled_back", event.t, f"#{event.index} {event.kind}")
            elif isinstance(event, RunFinished):
                with self.lock:
                    self.phase = f"experiment {number}/{len(self.drill.experiments)}: finished ({event.verdict})"

        return listener

    # -- the run -----------------------------------------------------------------------------
    def _ticker(self) -> None:
        inbox = AckInbox(self.drill_dir)
        while not self._stop.wait(TICK_S):
            lines: list[str] = []
            with self.lock:
                for ack in inbox.read_new():
                    lines += self.runbook.ack(ack.step, ack.by, ack.t, ack.source)
            self._changed(lines)

    @contextmanager
    def _live_services(self) -> Iterator[None]:
        """The ack page (interactive), live.json, the ticker thread and the live view, for the drill's duration."""
        if self.options.web and not self.options.non_interactive:
            self.server = AckServer(self.drill_dir, self.drill.title, self.drill.name, self.state, self._check_ack)
            self.server.start()
        write_live(
            self.drill_dir, self.drill.name, self.record.drill_run_id, self.server.base_url if self.server else None
        )
        ticker = threading.Thread(target=self._ticker, name="drill-ticker", daemon=True)
        ticker.start()
        try:
            with self.console.live(RunbookView(self.state)):
                yield
        finally:
            self._stop.set()
            ticker.join(timeout=5)
            (self.drill_dir / _LIVE_FILE).unlink(missing_ok=True)
            if self.server is not None:
                self.server.stop()

    def _check_ack(self, step_id: str) -> str | None:
        with self.lock:
            return self.runbook.check_ack(step_id)

    def execute(self) -> DrillOutcome:
        """Run the drill; raises GuardRefusedError (nothing started), else the verdict is in the record."""
        self._guard()
        self.drill_dir.mkdir(parents=True, exist_ok=True)
        outcome = DrillOutcome(self.plan, self.record, self.drill_dir)
        self.console.say(
            [
                f"drill {self.drill.name} ({self.drill.title}) run {self.record.drill_run_id}",
                f"record: {self.drill_dir / RECORD_FILE}",
            ]
        )
        self.record.notifications += notify(self.drill.notify, "started", self.record)
        self.console.say([self._delivery_line(n) for n in self.record.notifications])
        interrupted = False
        with self._live_services():
            if self.server is not None:
                self.console.say([f"runbook page: {self.server.url}"])
            with self.lock:
                lines = self.runbook.start(self.record.started_at)
            self._changed(lines)
            try:
                if self._experiments(outcome):
                    raise KeyboardInterrupt  # an experiment was interrupted: so is the drill
                with self.lock:
                    self.phase = "closing the runbook"
                    lines = self.runbook.close_conditions(time.time())
                self._changed(lines)
                self._wait_for_acks()
            except KeyboardInterrupt:
                interrupted = True
                with self.lock:
                    self.phase = "interrupted"
                    lines = self.runbook.close(time.time(), "skipped", "the drill was interrupted")
                self._changed(lines)
            with self.lock:
                lines = self.runbook.close(time.time())
            self._changed(lines)
        self._verdict(interrupted)
        self.save()
        return outcome

    def _market_override(self) -> Override | None:
        """The override passed to every experiment's market-hours guard: the command line's, else the file's."""
        if self.options.guards.market_hours is not None:
            return self.options.guards.market_hours
        calendar = self.drill.calendar
        return Override(reason=f"drill {self.drill.name}: {calendar.reason}") if calendar.override else None

    def _guard(self) -> None:
        reason = market_open(self.drill.calendar.hours(), datetime.datetime.now(datetime.UTC))
        override = self._market_override()
        if reason is None:
            self.record.calendar = "outside market hours" if self.drill.calendar.hours() else "no drill-level guard"
        elif override is not None:
            self.record.calendar = f"{reason}; run anyway by {override.who()}: {override.reason}"
        else:
            raise GuardRefusedError(
                f"drill {self.drill.name!r} not started: {reason}. Drills run outside trading hours; to run "
                "now deliberately set calendar.override with a reason in the drill file, or pass "
                "--ignore-market-hours --reason TEXT"
            )

    def _experiments(self, outcome: DrillOutcome) -> bool:
        """Run the experiments in order; True when one was interrupted (the drill stops then)."""
        options = self.options
        for index, exp in enumerate(self.record.experiments):
            number = index + 1
            path = self.plan.experiment_path(index)
            with self.lock:
                self.phase = f"experiment {number}/{len(self.record.experiments)}: starting"
                exp.verdict, exp.started_at = "running", time.time()
            self._changed([f"experiment {number}: {exp.title} ({exp.file})"])
            bus = EventBus()
            bus.subscribe(self._listener(number))
            run_options = RunOptions(
                runs_dir=options.runs_dir,
                stack_dir=options.stack_dir,
                stack_up=options.stack_up,
                seed=options.seed,
                quiet=options.quiet,
                guards=GuardOptions(
                    production=options.guards.production, market_hours=self._market_override(), now=options.guards.now
                ),
            )
            try:
                result = self.run(path, run_options, bus)
            except ChaosError as exc:
                with self.lock:
                    exp.verdict, exp.exit_code, exp.finished_at = "error", exc.exit_code, time.time()
                    self.record.summary = f"experiment {number} could not run: {exc}"
                self._changed([f"experiment {number} could not run: {exc}"])
                return False
            outcome.runs.append(result)
            report = self.experiment_reports(result) if self.experiment_reports is not None else None
            journal = result.journal
            with self.lock:
                self.journals.append(journal)
                figures.summarize(exp, journal, result.journal_path)
                exp.report = str(report) if report is not None else None
                recovered = [f.recovery for f in journal.faults if f.recovery is not None]
                times = [figures.recovery_time(r) for r in recovered]
                if recovered and exp.rto_s is not None and all(t is not None for t in times):
                    last = max(t for t in times if t is not None)
                    lines = self.runbook.observe(
                        Occurrence("recovered", number, last, f"RTO {exp.rto_s:g}s"), time.time()
                    )
                else:
                    lines = []
                lines += self.runbook.observe(
                    Occurrence("experiment_finished", number, journal.finished_at or time.time(), journal.verdict),
                    time.time(),
                )
            self._changed([*lines, f"experiment {number}: {journal.verdict.upper()} — {journal.summary}"])
            if journal.exit_code == ExitCode.INTERRUPTED:
                return True
            if journal.exit_code in (ExitCode.ROLLBACK_FAILED, ExitCode.CANNOT_RUN):
                return False  # the system may be broken: no further experiment
        return False

    def _wait_for_acks(self) -> None:
        deadline = time.monotonic() + self.options.ack_timeout_s
        announced = False
        while time.monotonic() < deadline:
            with self.lock:
                if self.runbook.all_finished():
                    return
                if not announced:
                    self.phase = "experiments finished: waiting for acknowledgements"
            if not announced:
                pending = [
                    s.id for s, r in zip(self.drill.runbook, self.runbook.records, strict=True) if r.status == "pending"
                ]
                wait = f"waiting up to {format_duration(self.options.ack_timeout_s)} for: {', '.join(pending)}"
                self.console.say([f"{wait} (chaos.py drill ack STEP)"])
                announced = True
            time.sleep(TICK_S)

    def _verdict(self, interrupted: bool) -> None:
        rec = self.record
        rec.finished_at = time.time()
        self._derive()
        for exp in rec.experiments:
            if exp.verdict == "pending":
                exp.verdict = "skipped"
        rec.objectives = figures.objectives(self.drill.objectives.model_dump(), rec)
        codes = [e.exit_code for e in rec.experiments if e.exit_code is not None]
        # A drill objective that could not be checked is missed (docs/drills.md): the drill asked for it.
        missed = [o.name for o in rec.objectives if not o.met]
        failed_exps = [str(i + 1) for i, e in enumerate(rec.experiments) if e.verdict not in ("passed", "skipped")]
        if ExitCode.ROLLBACK_FAILED in codes:
            rec.verdict, rec.exit_code = "failed", ExitCode.ROLLBACK_FAILED
            headline = "a fault could NOT be rolled back: check the system now"
        elif interrupted or ExitCode.INTERRUPTED in codes:
            rec.verdict, rec.exit_code = "interrupted", ExitCode.INTERRUPTED
            headline = "interrupted; faults were rolled back"
        elif ExitCode.CANNOT_RUN in codes:
            rec.verdict, rec.exit_code = "error", ExitCode.CANNOT_RUN
            headline = rec.summary or "an experiment could not run"
        elif any(e.verdict == "aborted" for e in rec.experiments):
            rec.verdict, rec.exit_code = "aborted", ExitCode.DEVIATED
            headline = "an experiment was aborted"
        elif failed_exps or missed:
            rec.verdict, rec.exit_code = "failed", ExitCode.DEVIATED
            parts = [f"experiment(s) {', '.join(failed_exps)} did not pass"] if failed_exps else []
            parts += [f"objective(s) missed: {', '.join(missed)}"] if missed else []
            headline = "; ".join(parts)
        else:
            rec.verdict, rec.exit_code = "passed", ExitCode.PASSED
            headline = "every experiment passed and every objective was met"
        done = sum(1 for s in rec.steps if s.status in ("done", "late"))
        late = sum(1 for s in rec.steps if s.status == "late")
        steps = f"{done}/{len(rec.steps)} runbook steps done" + (f" ({late} late)" if late else "")
        rec.summary = f"{headline}; {steps}."

    @staticmethod
    def _delivery_line(result: dict[str, Any]) -> str:
        state = f"HTTP {result['status']}" if result.get("ok") else f"FAILED ({result.get('error')})"
        return f"webhook {result['target']} ({result['event']}): {state}"


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
        print(DrillRunner._delivery_line(result), file=stream, flush=True)
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
