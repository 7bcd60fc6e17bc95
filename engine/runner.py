"""One run of an experiment, as named phases recorded in the journal.

preflight → baseline (load runs; the steady state must hold or nothing is injected) → faults on the
timeline (each rollback registered before its injection) → rollback (always, last-in first-out,
verified) → recovery (RTO per fault) → verdict. Whatever happens after preflight — normal end,
exception, SIGINT/SIGTERM/SIGHUP — every registered fault is rolled back before the run returns.
"""

from __future__ import annotations

import datetime
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import analysis, integrity
from engine.context import Clock, EngineContext, SystemClock
from engine.errors import Aborted, ChaosError, Interrupted, LedgerWriteError, LoadError, PreflightError
from engine.events import (
    Event,
    EventBus,
    FaultInjected,
    LoadStarted,
    Noted,
    PhaseFinished,
    PhaseStarted,
    ProbeObserved,
    RunFinished,
    RunStarted,
)
from engine.guards import GuardOptions, market_open
from engine.journal import (
    ErrorRecord,
    EventRecord,
    FaultRecord,
    GuardRecord,
    Journal,
    PhaseName,
    PhaseRecord,
    PhaseStatus,
)
from engine.load import LoadDriver
from engine.metrics import MetricStore
from engine.model import AbortCondition, HttpProbe, MetricProbe, Probe
from engine.plan import Plan, PlannedFault
from engine.probes import HttpSampler, judge, render_url, second_failures
from engine.rollback import Rollbacks
from engine.signals import SignalGuard
from engine.stack import LiveStack
from engine.undo import UndoLedger
from engine.writer import JournalWriter, space_problem
from injectors.base import FaultPlan
from injectors.errors import InjectorError

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
        self.writer = JournalWriter(self.journal_path)
        self.ctx = EngineContext(settings.run_id, stack, settings.seed, self.bus)
        ledger = UndoLedger(settings.undo_ledger) if settings.undo_ledger is not None else None
        self.rollbacks = Rollbacks(
            self.ctx, self.bus, self.save, self.clock.time, ledger=ledger, stack=stack, lock_keys=settings.lock_keys
        )
        self.store = MetricStore()
        self.samplers: dict[str, HttpSampler] = {}
        self.guard = SignalGuard(self._signal_ignored)
        self.t0: float | None = None
        self._mono0 = 0.0
        self._live_next: int | None = None
        self._live_ok: bool | None = None
        self._interrupted: str | None = None
        self._aborted: str | None = None
        self._abort_probes = [self._abort_probe(c) for c in self.experiment.abort_when]
        self._abort_streaks = [0] * len(self._abort_probes)
        self._abort_checked: int | None = None
        doc = plan.document
        self.journal = Journal(
            run_id=settings.run_id,
            tool_version=TOOL_VERSION,
            experiment_title=self.experiment.title,
            experiment_description=self.experiment.description,
            experiment_file=str(doc.path),
            experiment_sha256=doc.sha256,
            experiment=self.experiment.model_dump(mode="json"),
            stack=stack.summary(),
            seed=settings.seed,
            started_at=self.clock.time(),
            load=load.record,
            guards=list(settings.guards),
            faults=[
                FaultRecord(
                    index=f.index,
                    name=f.step.name,
                    kind=f.step.kind,
                    target=f.step.target,
                    at_s=f.step.at,
                    duration_s=f.step.duration,
                    params=f.spec.model_dump(mode="json"),
                )
                for f in plan.faults
            ],
        )
        self.bus.subscribe(self._record_event)

    def _abort_probe(self, condition: AbortCondition) -> Probe:
        """What an abort condition watches, second by second: a probe of the steady state, or a threshold."""
        if condition.probe is not None:
            return next(p for p in self.experiment.steady_state if p.name == condition.probe)
        assert condition.metric is not None  # the model requires a metric when there is no probe
        return MetricProbe(
            name=condition.label,
            metric=condition.metric,
            request=condition.request,
            max=condition.above,
            min=condition.below,
        )

    # -- journal -----------------------------------------------------------------------------
    def save(self) -> None:
        """Write the journal; never raises (a failure is kept by the writer and aborts the run at the next tick)."""
        self.writer.save(self.journal)

    def _check_record(self) -> None:
        """Drilling on without a record is drilling blind: a journal that cannot be written aborts the run."""
        self.writer.watch_space(self.clock.monotonic())
        if self.writer.failure is not None:
            self.journal.errors.append(
                ErrorRecord(
                    t=self.clock.time(),
                    phase=self._current_phase(),
                    type="JournalWriteError",
                    message=self.writer.failure,
                )
            )
            raise Aborted(f"the journal could not be written ({self.writer.failure})")

    def _record_event(self, event: Event) -> None:
        self.journal.events.append(EventRecord(t=event.t, type=event.type, message=event.message(), data=event.data()))
        self.save()

    def _phase(self, name: PhaseName) -> None:
        self.journal.phases.append(PhaseRecord(name=name, started_at=self.clock.time()))
        self.bus.emit(PhaseStarted(phase=name, t=self.clock.time()))

    def _end_phase(self, name: PhaseName, status: PhaseStatus, detail: str = "") -> None:
        record = self.journal.phase(name)
        if record is None or record.finished_at is not None:
            return
        record.finished_at, record.status, record.detail = self.clock.time(), status, detail
        self.bus.emit(PhaseFinished(phase=name, status=status, detail=detail, t=self.clock.time()))

    def _error(self, phase: str, exc: BaseException) -> None:
        message = (
            str(exc)
            if isinstance(exc, ChaosError | InjectorError)
            else "".join(traceback.format_exception_only(type(exc), exc)).strip()
        )
        self.journal.errors.append(
            ErrorRecord(t=self.clock.time(), phase=phase, type=type(exc).__name__, message=message)
        )
        self.bus.emit(Noted(text=f"error in {phase}: {message}", t=self.clock.time()))

    def _signal_ignored(self, name: str) -> None:
        hint = " (press Ctrl-C again to skip it and leave the faults in place)" if name == "SIGINT" else ""
        self.bus.emit(Noted(text=f"{name} received while rolling back: rollback continues{hint}", t=self.clock.time()))

    # -- the run -----------------------------------------------------------------------------
    def execute(self) -> Journal:
        """Run every phase; never raises for run failures (they are in the journal's verdict)."""
        self.bus.emit(
            RunStarted(
                run_id=self.settings.run_id,
                title=self.experiment.title,
                seed=self.settings.seed,
                t=self.clock.time(),
            )
        )
        self.guard.install()
        self.writer.set_aside()
        try:
            try:
                self._phase("preflight")
                self.preflight()
                self._end_phase("preflight", "ok")
                self._start_load()
                self._timeline()
            except Aborted as exc:
                self._aborted = exc.reason
                self.bus.emit(Noted(text=f"ABORT: {exc.reason}: rolling everything back", t=self.clock.time()))
                self._close_open_phases("aborted")
            except Interrupted as exc:
                self._interrupted = exc.signal_name
                self.bus.emit(Noted(text=f"{exc.signal_name} received: rolling back", t=self.clock.time()))
                self._close_open_phases("interrupted")
            except Exception as exc:  # a bug or failure anywhere: record it, still roll back
                self._error(self._current_phase(), exc)
                self._close_open_phases("failed")
            finally:
                self.guard.mask()
                self._unwind()
            self._finish()
        finally:
            self.guard.uninstall()
            self.writer.close()
            self.save()  # the last word, with the room the reserve gave back
        return self.journal

    def preflight(self) -> list[FaultPlan]:
        """Check that every fault resolves to live targets and the load target answers; changes nothing."""
        problems: list[str] = []
        plans = []
        for fault in self.plan.faults:
            try:
                refs = fault.injector(fault.spec).resolve(fault.step.target, fault.step.select, self.ctx)
                plans.append(self._fault_plan(fault, refs))
            except InjectorError as exc:
                problems.append(f"fault #{fault.index} {fault.step.kind}: {exc}")
                continue
            if (too_wide := self._too_wide(refs)) is not None:
                problems.append(f"fault #{fault.index} {fault.step.kind}: {too_wide}")
        cap = self.experiment.guards.max_targets_per_fault
        widest = max((len(p.targets) for p in plans), default=0)
        self.journal.guards.append(
            GuardRecord(
                name="blast_radius",
                ok=not any("guards.max_targets_per_fault" in p for p in problems),
                detail=f"at most {cap} target(s) per fault, {self.experiment.guards.max_concurrent_faults} "
                f"fault(s) at once; the widest fault resolves to {widest}",
            )
        )
        if (problem := self.load.check_target()) is not None:
            problems.append(problem)
        if (short := space_problem(self.settings.run_dir)) is not None:
            problems.append(short)
        for probe in self.experiment.steady_state:
            if isinstance(probe, HttpProbe):
                try:
                    self.samplers[probe.name] = HttpSampler(
                        probe, render_url(probe.http.url, self.stack.description.endpoints)
                    )
                except KeyError as exc:
                    problems.append(f"probe {probe.name!r}: the stack has no endpoint {exc.args[0]!r}")
        if problems:
            raise PreflightError("preflight failed, nothing was started or injected:\n  " + "\n  ".join(problems))
        return plans

    def _too_wide(self, refs: list[Any]) -> str | None:
        cap = self.experiment.guards.max_targets_per_fault
        if len(refs) <= cap:
            return None
        return f"it resolves to {len(refs)} targets, over guards.max_targets_per_fault ({cap}); nothing injected"

    def _fault_plan(self, fault: PlannedFault, refs: list[Any]) -> FaultPlan:
        step = fault.step
        return FaultPlan(
            kind=step.kind,
            target=step.target,
            params=fault.spec.model_dump(mode="json"),
            select=step.select,
            seed=self.settings.seed,
            targets=refs,
        )

    def _start_load(self) -> None:
        self.load.start()
        self.t0 = self.load.wait_started(self.settings.load_start_timeout_s)
        self._mono0 = self.clock.monotonic() - (self.clock.time() - self.t0)
        rec = self.load.record
        self.bus.emit(LoadStarted(users=rec.users, duration_s=rec.duration_s, host=rec.host or "", t=self.t0))
        for sampler in self.samplers.values():
            sampler.start()
        self._phase("baseline")

    def _elapsed(self) -> float:
        return self.clock.monotonic() - self._mono0

    def _timeline(self) -> None:
        assert self.t0 is not None
        actions = sorted(
            [(f.start_s, 1, "inject", f) for f in self.plan.faults]
            + [(f.end_s, 0, "rollback", f) for f in self.plan.faults],
            key=lambda a: (a[0], a[1]),
        )
        duration = self.experiment.load.duration
        baseline_judged = False
        nxt = 0
        while True:
            self._ingest()
            self._check_abort()
            self._check_record()
            self._check_calendar()
            now = self._elapsed()
            while nxt < len(actions) and actions[nxt][0] <= now:
                _, _, what, fault = actions[nxt]
                nxt += 1
                if what == "inject":
                    if not baseline_judged:
                        baseline_judged = True
                        if not self._judge_baseline():
                            return
                    self._inject(fault)
                else:
                    self.rollbacks.undo(fault.index)
                    if nxt == len(actions):
                        self._end_phase("faults", "ok")
                        self._phase("recovery")
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

    def _check_abort(self) -> None:
        """Raise Aborted when an abort condition has held for its whole `for`, or the red button was pressed."""
        flag = self.settings.abort_file
        if flag is not None and flag.exists() and flag.stat().st_mtime >= self.journal.started_at:
            raise Aborted(f"{flag.name} was created (chaos.py abort)")
        last = self.store.last_second()
        if last is None or self.t0 is None:
            return
        first = self._abort_checked + 1 if self._abort_checked is not None else math.floor(self.t0)
        for second in range(first, last + 1):
            for i, (probe, condition) in enumerate(zip(self._abort_probes, self.experiment.abort_when, strict=True)):
                breached = bool(second_failures([probe], second, self.store, self.samplers))
                self._abort_streaks[i] = self._abort_streaks[i] + 1 if breached else 0
                if self._abort_streaks[i] >= math.ceil(condition.for_s):
                    raise Aborted(f"abort condition '{condition.label}' held for {self._abort_streaks[i]}s")
        self._abort_checked = last

    def _check_calendar(self, before: str = "") -> None:
        """A trading session opening during the run ends it: no fault may start, or stay, inside one.

        Judged on the run's clock before every injection and every tick, unless the operator overrode the
        calendar for this run (journaled at the start).
        """
        hours = self.stack.description.market_hours
        if hours is None or self.settings.guard_options.market_hours is not None:
            return
        now = datetime.datetime.fromtimestamp(self.clock.time(), datetime.UTC)
        why = market_open(hours, now)
        if before and why is None:
            self.journal.guards.append(
                GuardRecord(
                    name="market_hours", ok=True, detail=f"{before}: outside trading hours at {now:%H:%M:%S} UTC"
                )
            )
        if why is not None:
            where = before or "during the run"
            self.journal.guards.append(GuardRecord(name="market_hours", ok=False, detail=f"{where}: {why}"))
            raise Aborted(f"{why}; a trading session opened during the run, so every fault is rolled back")

    def _judge_baseline(self) -> bool:
        assert self.t0 is not None
        # The Locust side writes a second once it is over: wait (briefly) for the last one before now.
        wanted = math.floor(self.clock.time()) - 1
        deadline = self.clock.monotonic() + 2.0
        while (self.store.last_second() or 0) < wanted and self.clock.monotonic() < deadline:
            self.clock.sleep(0.05)
            self._ingest()
        last = self.store.last_second()
        end = min(self.clock.time(), last + 1.0) if last is not None else self.clock.time()
        window = (self.t0 + self.experiment.load.warmup, end)
        checks = [judge(p, "baseline", window, self.store, self.samplers) for p in self.experiment.steady_state]
        self.journal.checks.extend(c for c in checks if c is not None)
        failed = [c for c in checks if c is not None and not c.ok]
        if failed:
            self._end_phase("baseline", "deviated", ", ".join(c.probe for c in failed))
            for record in self.journal.faults:
                record.status = "skipped"
            self._phase("faults")
            self._end_phase("faults", "skipped", "the steady state did not hold before any fault")
            self.load.stop()
            return False
        self._end_phase("baseline", "ok")
        self._phase("faults")
        return True

    def _inject(self, fault: PlannedFault) -> None:
        assert self.t0 is not None
        record = self.journal.faults[fault.index - 1]
        record.scheduled_at = self.t0 + fault.start_s
        self._check_calendar(before=f"before fault #{fault.index}")
        injector = fault.injector(fault.spec)
        try:
            plan = self._fault_plan(fault, injector.resolve(fault.step.target, fault.step.select, self.ctx))
        except InjectorError as exc:
            record.status, record.error = "failed", str(exc)
            self.bus.emit(
                FaultInjected(
                    index=fault.index,
                    kind=fault.step.kind,
                    target=fault.step.target,
                    targets=[],
                    ok=False,
                    error=str(exc),
                    t=self.clock.time(),
                )
            )
            return
        if (too_wide := self._too_wide(plan.targets)) is not None:
            record.status, record.error = "failed", f"refused: {too_wide}"
            self.bus.emit(
                FaultInjected(
                    index=fault.index,
                    kind=fault.step.kind,
                    target=fault.step.target,
                    targets=[],
                    ok=False,
                    error=record.error,
                    t=self.clock.time(),
                )
            )
            return
        record.plan = plan
        if self.writer.failure is not None:  # only inject what can be on record
            record.status, record.error = (
                "failed",
                f"not injected: the journal could not be written ({self.writer.failure})",
            )
            raise Aborted(f"fault #{fault.index} was not injected: the journal could not be written")
        try:
            self.rollbacks.register(record, injector, plan)  # before injecting: undone whatever happens next
        except LedgerWriteError as exc:
            record.status, record.error = "failed", f"not injected: {exc}"
            raise Aborted(f"fault #{fault.index} was not injected: {exc}") from exc
        record.injected_at = self.clock.time()
        record.inject = injector.inject(plan, self.ctx)
        ok = all(r.ok for r in record.inject)
        record.status = "injected" if ok else "failed"
        errors = "; ".join(f"{r.id}: {r.error}" for r in record.inject if not r.ok) or None
        record.error = errors
        self.bus.emit(
            FaultInjected(
                index=fault.index,
                kind=fault.step.kind,
                target=fault.step.target,
                targets=[r.id for r in record.inject],
                ok=ok,
                error=errors,
                t=record.injected_at,
            )
        )

    def _ingest(self) -> None:
        for record in self.load.poll():
            self.store.add(record)
        last = self.store.last_second()
        if last is None or self.t0 is None:
            return
        # Judge live, one second behind the newest, to show deviations as they happen.
        second = self._live_next if self._live_next is not None else math.ceil(self.t0)
        while second < last:
            failing = second_failures(list(self.experiment.steady_state), second, self.store, self.samplers)
            if (not failing) != self._live_ok:
                self._live_ok = not failing
                self.bus.emit(ProbeObserved(second=float(second), ok=not failing, failing=failing, t=self.clock.time()))
            second += 1
        self._live_next = second

    def _unwind(self) -> None:
        pending = self.rollbacks.pending()
        if pending:
            self._phase("rollback")
            with self.guard.skippable():
                ok = self.rollbacks.undo_all()
            self._end_phase("rollback", "ok" if ok else "failed", f"{len(pending)} fault(s) rolled back")
        for sampler in self.samplers.values():
            sampler.stop()
        try:
            stop_now = self._interrupted or self._aborted or self.journal.errors
            if not self.load.wait_finished(0 if stop_now else 15.0):
                self.load.stop()
        except Exception as exc:  # stopping the load must never hide the rollback result
            self._error("rollback", exc)
        self._ingest()

    def _finish(self) -> None:
        if self.t0 is not None:
            load_end = min(self.load.record.finished_at or self.clock.time(), self.t0 + self.experiment.load.duration)
            if self._interrupted:
                self.journal.verdict = "interrupted"
            elif self._aborted:
                self.journal.verdict = "aborted"
            analysis.analyse(self.journal, self.experiment, self.store, self.samplers, self.t0, load_end)
            status: PhaseStatus = (
                "ok" if all(c.ok for c in self.journal.checks if c.phase == "recovery") else "deviated"
            )
            self._end_phase("recovery", status)
            self._check_integrity()
        self._phase("verdict")
        verdict, code, summary = analysis.decide(self.journal, self.experiment, self._interrupted, self._aborted)
        self.journal.verdict, self.journal.exit_code, self.journal.summary = verdict, code, summary
        self.journal.finished_at = self.clock.time()
        self._end_phase("verdict", "ok" if code == 0 else "deviated", verdict)
        self.bus.emit(RunFinished(verdict=verdict, exit_code=code, summary=summary, t=self.clock.time()))

    def _check_integrity(self) -> None:
        """Reconcile what the load generators were told against what the system holds (not after an interrupt)."""
        if self._interrupted or not integrity.checks_for(self.experiment, self.stack.description.name):
            return
        if any(f.status == "rollback_failed" for f in self.journal.faults):
            return  # the system is still broken: its data is not final
        self._phase("integrity")
        try:
            ok = integrity.run_integrity(
                self.journal,
                self.experiment,
                self.stack,
                self.load.record.host,
                self.settings.run_dir / integrity.LEDGER_DIR,
            )
        except Exception as exc:  # a broken check must not hide the verdict of the rest of the run
            self._error("integrity", exc)
            ok = False
        self._end_phase("integrity", "ok" if ok else "deviated", integrity.phase_detail(self.journal))
        self.save()

    def _current_phase(self) -> str:
        open_phases = [p.name for p in self.journal.phases if p.finished_at is None]
        return open_phases[-1] if open_phases else "run"

    def _close_open_phases(self, status: PhaseStatus) -> None:
        for record in self.journal.phases:
            if record.finished_at is None:
                self._end_phase(record.name, status)
