"""One run of an experiment, as named phases recorded in the journal.

preflight → baseline (load runs; the steady state must hold or nothing is injected) → faults on the
timeline (each rollback registered before its injection) → rollback (always, last-in first-out,
verified) → recovery (RTO per fault) → verdict. Whatever happens after preflight — normal end,
exception, SIGINT/SIGTERM/SIGHUP — every registered fault is rolled back before the run returns.

The Runner only coordinates; its collaborators do the work: the fault executor (engine.executor:
injections, rollbacks, the undo ledger), the live judge (engine.judge: load metrics in, the steady
state judged), the abort watch (engine.abort_watch: what ends a run early) and the recorder
(engine.recorder: the journal, written through engine.writer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine import analysis, integrity
from engine.abort_watch import AbortWatch
from engine.context import Clock, EngineContext, SystemClock
from engine.errors import Aborted, Interrupted, LoadError, PreflightError
from engine.events import EventBus, LoadStarted, Noted, RunFinished, RunStarted
from engine.executor import FaultExecutor, fault_records
from engine.guards import GuardOptions
from engine.journal import GuardRecord, Journal, PhaseStatus
from engine.judge import LiveJudge
from engine.load import LoadDriver
from engine.plan import Plan
from engine.recorder import RunRecorder
from engine.signals import SignalGuard
from engine.stack import LiveStack
from engine.undo import UndoLedger
from engine.writer import JournalWriter, space_problem
from injectors.base import FaultPlan

TOOL_VERSION = "0.1.0"


@dataclass(frozen=True)
class RunSettings:
    run_id: str
    run_dir: Path
    seed: int
    tick_s: float = 0.2
    load_start_timeout_s: float = 60.0
    undo_ledger: Path | None = None  # where each fault is written down before it is injected
    abort_file: Path | None = None  # `chaos.py abort` creates it: the big red button
    guards: tuple[GuardRecord, ...] = ()  # judged before the run (engine.guards), journaled as they were
    lock_keys: tuple[str, ...] = ()  # the system identities this run holds locked (engine.locks)
    guard_options: GuardOptions = field(default_factory=GuardOptions)  # overrides given; the calendar is re-checked


class Runner:
    """Runs one planned experiment against a live stack under load; `execute` returns its journal."""

    def __init__(
        self,
        plan: Plan,
        stack: LiveStack,
        load: LoadDriver,
        settings: RunSettings,
        bus: EventBus | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.plan = plan
        self.experiment = plan.experiment
        self.stack = stack
        self.load = load
        self.settings = settings
        self.bus = bus or EventBus()
        self.clock = clock or SystemClock()
        self.journal_path = settings.run_dir / "journal.json"
        self.ctx = EngineContext(settings.run_id, stack, settings.seed, self.bus)
        self.journal = self._new_journal()
        self.recorder = RunRecorder(self.journal, JournalWriter(self.journal_path), self.clock, self.bus)
        self.judge = LiveJudge(self.experiment, load, self.clock, self.bus)
        overridden = settings.guard_options.market_hours is not None
        self.watch = AbortWatch(
            self.experiment, stack, self.judge, self.recorder, self.clock, settings.abort_file, overridden
        )
        ledger = UndoLedger(settings.undo_ledger) if settings.undo_ledger is not None else None
        self.executor = FaultExecutor(
            plan,
            self.recorder,
            self.ctx,
            self.clock,
            self.bus,
            settings.seed,
            before_inject=self.watch.check_calendar,
            ledger=ledger,
            lock_keys=settings.lock_keys,
        )
        self.guard = SignalGuard(self._signal_ignored)
        self.t0: float | None = None  # when the load started (wall clock)
        self._mono0 = 0.0  # the same instant on the monotonic clock
        self._interrupted: str | None = None
        self._aborted: str | None = None

    @property
    def writer(self) -> JournalWriter:
        """What writes the journal; may be replaced before `execute` (every collaborator uses the current one)."""
        return self.recorder.writer

    @writer.setter
    def writer(self, writer: JournalWriter) -> None:
        self.recorder.writer = writer

    def _new_journal(self) -> Journal:
        doc = self.plan.document
        return Journal(
            run_id=self.settings.run_id,
            tool_version=TOOL_VERSION,
            experiment_title=self.experiment.title,
            experiment_description=self.experiment.description,
            experiment_file=str(doc.path),
            experiment_sha256=doc.sha256,
            experiment=self.experiment.model_dump(mode="json"),
            stack=self.stack.summary(),
            seed=self.settings.seed,
            started_at=self.clock.time(),
            load=self.load.record,
            guards=list(self.settings.guards),
            faults=fault_records(self.plan),
        )

    def _signal_ignored(self, name: str) -> None:
        hint = " (press Ctrl-C again to skip it and leave the faults in place)" if name == "SIGINT" else ""
        self.bus.emit(Noted(text=f"{name} received while rolling back: rollback continues{hint}", t=self.clock.time()))

    # -- the run -----------------------------------------------------------------------------
    def execute(self) -> Journal:
        """Run every phase; never raises for run failures (they are in the journal's verdict)."""
        self.bus.emit(
            RunStarted(
                run_id=self.settings.run_id, title=self.experiment.title, seed=self.settings.seed, t=self.clock.time()
            )
        )
        self.guard.install()
        self.writer.set_aside()
        try:
            try:
                self.recorder.phase("preflight")
                self.preflight()
                self.recorder.end_phase("preflight", "ok")
                self._start_load()
                self._timeline()
            except Aborted as exc:
                self._aborted = exc.reason
                self.bus.emit(Noted(text=f"ABORT: {exc.reason}: rolling everything back", t=self.clock.time()))
                self.recorder.close_open_phases("aborted")
            except Interrupted as exc:
                self._interrupted = exc.signal_name
                self.bus.emit(Noted(text=f"{exc.signal_name} received: rolling back", t=self.clock.time()))
                self.recorder.close_open_phases("interrupted")
            except Exception as exc:  # a bug or failure anywhere: record it, still roll back
                self.recorder.error(self.recorder.current_phase(), exc)
                self.recorder.close_open_phases("failed")
            finally:
                self.guard.mask()
                self._unwind()
            self._finish()
        finally:
            self.guard.uninstall()
            self.writer.close()
            self.recorder.finish()  # the last word, with the room the reserve gave back
        return self.journal

    def preflight(self) -> list[FaultPlan]:
        """Check that every fault resolves to live targets and the load target answers; changes nothing."""
        plans, problems = self.executor.resolve_all()
        if (problem := self.load.check_target()) is not None:
            problems.append(problem)
        if (short := space_problem(self.settings.run_dir)) is not None:
            problems.append(short)
        problems += self.judge.prepare(self.stack.description.endpoints, self.plan.document.locator)
        if problems:
            raise PreflightError("preflight failed, nothing was started or injected:\n  " + "\n  ".join(problems))
        return plans

    def _start_load(self) -> None:
        self.load.start()
        self.t0 = self.load.wait_started(self.settings.load_start_timeout_s)
        self._mono0 = self.clock.monotonic() - (self.clock.time() - self.t0)
        rec = self.load.record
        self.bus.emit(LoadStarted(users=rec.users, duration_s=rec.duration_s, host=rec.host or "", t=self.t0))
        self.judge.start(self.t0)
        self.recorder.phase("baseline")

    def _elapsed(self) -> float:
        return self.clock.monotonic() - self._mono0

    def _timeline(self) -> None:
        """Tick until the load ends: judge, watch, and inject or roll back each fault when it is due."""
        assert self.t0 is not None
        actions = self.executor.actions()
        duration = self.experiment.load.duration
        baseline_judged = False
        nxt = 0
        while True:
            self.judge.ingest()
            self.watch.tick(self.t0)
            now = self._elapsed()
            while nxt < len(actions) and actions[nxt][0] <= now:
                _, _, what, fault = actions[nxt]
                nxt += 1
                if what == "inject":
                    if not baseline_judged:
                        baseline_judged = True
                        if not self._judge_baseline():
                            return
                    self.executor.inject(fault, self.t0)
                else:
                    self.executor.roll_back(fault)
                    if nxt == len(actions):
                        self.recorder.end_phase("faults", "ok")
                        self.recorder.phase("recovery")
                now = self._elapsed()
            if now >= duration and nxt >= len(actions):
                break
            if not self.load.running():
                if now < duration - 2.0:
                    raise LoadError(
                        f"the load generator exited {duration - now:.0f}s early (exit code "
                        f"{self.load.record.exit_code}); see {self.load.record.log}"
                    )
                break
            upcoming = actions[nxt][0] if nxt < len(actions) else duration
            self.clock.sleep(max(0.0, min(self.settings.tick_s, upcoming - now)))

    def _judge_baseline(self) -> bool:
        """The baseline's verdict; when the steady state did not hold, no fault is injected and the load stops."""
        checks = self.judge.judge_baseline()
        self.journal.checks.extend(checks)
        failed = [c for c in checks if not c.ok]
        if failed:
            self.recorder.end_phase("baseline", "deviated", ", ".join(c.probe for c in failed))
            self.executor.skip_all()
            self.recorder.phase("faults")
            self.recorder.end_phase("faults", "skipped", "the steady state did not hold before any fault")
            self.load.stop()
            return False
        self.recorder.end_phase("baseline", "ok")
        self.recorder.phase("faults")
        return True

    def _unwind(self) -> None:
        pending = self.executor.pending()
        if pending:
            self.recorder.phase("rollback")
            with self.guard.skippable():
                ok = self.executor.undo_all()
            self.recorder.end_phase("rollback", "ok" if ok else "failed", f"{len(pending)} fault(s) rolled back")
        self.judge.stop()
        try:
            stop_now = self._interrupted or self._aborted or self.journal.errors
            if not self.load.wait_finished(0 if stop_now else 15.0):
                self.load.stop()
        except Exception as exc:  # stopping the load must never hide the rollback result
            self.recorder.error("rollback", exc)
        self.judge.ingest()

    def _finish(self) -> None:
        if self.t0 is not None:
            load_end = min(self.load.record.finished_at or self.clock.time(), self.t0 + self.experiment.load.duration)
            if self._interrupted:
                self.journal.verdict = "interrupted"
            elif self._aborted:
                self.journal.verdict = "aborted"
            analysis.analyse(self.journal, self.experiment, self.judge.store, self.judge.samplers, self.t0, load_end)
            status: PhaseStatus = (
                "ok" if all(c.ok for c in self.journal.checks if c.phase == "recovery") else "deviated"
            )
            self.recorder.end_phase("recovery", status)
            self._check_integrity()
        self.recorder.phase("verdict")
        verdict, code, summary = analysis.decide(self.journal, self.experiment, self._interrupted, self._aborted)
        self.journal.verdict, self.journal.exit_code, self.journal.summary = verdict, code, summary
        self.journal.finished_at = self.clock.time()
        self.recorder.end_phase("verdict", "ok" if code == 0 else "deviated", verdict)
        self.bus.emit(RunFinished(verdict=verdict, exit_code=code, summary=summary, t=self.clock.time()))

    def _check_integrity(self) -> None:
        """Reconcile what the load generators were told against what the system holds (not after an interrupt)."""
        if self._interrupted or not integrity.checks_for(self.experiment, self.stack.description.name):
            return
        if any(f.status == "rollback_failed" for f in self.journal.faults):
            return  # the system is still broken: its data is not final
        self.recorder.phase("integrity")
        try:
            ok = integrity.run_integrity(
                self.journal,
                self.experiment,
                self.stack,
                self.load.record.host,
                self.settings.run_dir / integrity.LEDGER_DIR,
            )
        except Exception as exc:  # a broken check must not hide the verdict of the rest of the run
            self.recorder.error("integrity", exc)
            ok = False
        self.recorder.end_phase("integrity", "ok" if ok else "deviated", integrity.phase_detail(self.journal))
        self.recorder.save()
