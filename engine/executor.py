"""The fault executor: each fault of the timeline resolved, registered for rollback, injected and rolled back.

A fault is registered — with its rollback, and in the undo ledger on disk — before it is injected, so
that it is undone whatever happens next, by this process or by `chaos.py recover`. Nothing is injected
that could not be on record: a journal or a ledger that cannot be written aborts the run instead.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.context import Clock, EngineContext
from engine.errors import Aborted, LedgerWriteError
from engine.events import EventBus, FaultInjected
from engine.journal import FaultRecord, GuardRecord
from engine.plan import Plan, PlannedFault
from engine.recorder import RunRecorder
from engine.rollback import Rollbacks
from engine.undo import UndoLedger
from injectors.base import FaultPlan, TargetRef
from injectors.errors import InjectorError

Action = tuple[float, int, str, PlannedFault]  # (seconds after the load started, order at a tie, what, fault)


def fault_records(plan: Plan) -> list[FaultRecord]:
    """The journal's record of every fault on the timeline, as planned (nothing done yet)."""
    return [
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
    ]


class FaultExecutor:
    """Acts on the plan's faults for one run; `before_inject` may refuse an injection (the trading calendar)."""

    def __init__(
        self,
        plan: Plan,
        recorder: RunRecorder,
        ctx: EngineContext,
        clock: Clock,
        bus: EventBus,
        seed: int,
        before_inject: Callable[[str], None],
        ledger: UndoLedger | None = None,
        lock_keys: tuple[str, ...] = (),
    ) -> None:
        self._plan = plan
        self._recorder = recorder
        self._ctx = ctx
        self._clock = clock
        self._bus = bus
        self._seed = seed
        self._before_inject = before_inject
        self.rollbacks = Rollbacks(
            ctx, bus, recorder.save, clock.time, ledger=ledger, stack=ctx.stack, lock_keys=lock_keys
        )

    def actions(self) -> list[Action]:
        """Every injection and rollback in time order; at the same second a rollback comes before an injection."""
        return sorted(
            [(f.start_s, 1, "inject", f) for f in self._plan.faults]
            + [(f.end_s, 0, "rollback", f) for f in self._plan.faults],
            key=lambda a: (a[0], a[1]),
        )

    def resolve_all(self) -> tuple[list[FaultPlan], list[str]]:
        """Resolve every fault to live targets, changing nothing: the plans, and the preflight's problems.

        The blast-radius guard is journaled as judged on these targets.
        """
        problems: list[str] = []
        plans = []
        for fault in self._plan.faults:
            try:
                refs = fault.injector(fault.spec).resolve(fault.step.target, fault.step.select, self._ctx)
                plans.append(self._fault_plan(fault, refs))
            except InjectorError as exc:
                problems.append(f"fault #{fault.index} {fault.step.kind}: {exc}")
                continue
            if (too_wide := self._too_wide(refs)) is not None:
                problems.append(f"fault #{fault.index} {fault.step.kind}: {too_wide}")
        guards = self._plan.experiment.guards
        widest = max((len(p.targets) for p in plans), default=0)
        self._recorder.journal.guards.append(
            GuardRecord(
                name="blast_radius",
                ok=not any("guards.max_targets_per_fault" in p for p in problems),
                detail=f"at most {guards.max_targets_per_fault} target(s) per fault, {guards.max_concurrent_faults} "
                f"fault(s) at once; the widest fault resolves to {widest}",
            )
        )
        return plans, problems

    def inject(self, fault: PlannedFault, t0: float) -> None:
        """Inject one fault now (its offset is due); raises Aborted when it must not be injected at all."""
        record = self._recorder.journal.faults[fault.index - 1]
        record.scheduled_at = t0 + fault.start_s
        self._before_inject(f"before fault #{fault.index}")
        injector = fault.injector(fault.spec)
        try:
            plan = self._fault_plan(fault, injector.resolve(fault.step.target, fault.step.select, self._ctx))
        except InjectorError as exc:
            record.status, record.error = "failed", str(exc)
            self._announce(fault, record, [], self._clock.time())
            return
        if (too_wide := self._too_wide(plan.targets)) is not None:
            record.status, record.error = "failed", f"refused: {too_wide}"
            self._announce(fault, record, [], self._clock.time())
            return
        record.plan = plan
        if (failure := self._recorder.writer.failure) is not None:  # only inject what can be on record
            record.status, record.error = "failed", f"not injected: the journal could not be written ({failure})"
            raise Aborted(f"fault #{fault.index} was not injected: the journal could not be written")
        try:
            self.rollbacks.register(record, injector, plan)  # before injecting: undone whatever happens next
        except LedgerWriteError as exc:
            record.status, record.error = "failed", f"not injected: {exc}"
            raise Aborted(f"fault #{fault.index} was not injected: {exc}") from exc
        record.injected_at = self._clock.time()
        record.inject = injector.inject(plan, self._ctx)
        failed = [r for r in record.inject if not r.ok]
        record.status = "failed" if failed else "injected"
        record.error = "; ".join(f"{r.id}: {r.error}" for r in failed) or None
        self._announce(fault, record, [r.id for r in record.inject], record.injected_at)

    def roll_back(self, fault: PlannedFault) -> bool:
        """Undo one fault now (its duration is over); True when rolled back and verified."""
        return self.rollbacks.undo(fault.index)

    def pending(self) -> list[FaultRecord]:
        return self.rollbacks.pending()

    def undo_all(self) -> bool:
        """Undo every fault still in place, newest first (engine.rollback); True when all were verified gone."""
        return self.rollbacks.undo_all()

    def skip_all(self) -> None:
        """The steady state did not hold before any fault: none will be injected."""
        for record in self._recorder.journal.faults:
            record.status = "skipped"

    def _announce(self, fault: PlannedFault, record: FaultRecord, targets: list[str], t: float) -> None:
        """The one fault_injected event: what the record says now (injected, or failed and why)."""
        ok = record.status == "injected"
        self._bus.emit(
            FaultInjected(
                index=fault.index,
                kind=fault.step.kind,
                target=fault.step.target,
                targets=targets,
                ok=ok,
                error=record.error,
                t=t,
            )
        )

    def _too_wide(self, refs: list[TargetRef]) -> str | None:
        cap = self._plan.experiment.guards.max_targets_per_fault
        if len(refs) <= cap:
            return None
        return f"it resolves to {len(refs)} targets, over guards.max_targets_per_fault ({cap}); nothing injected"

    def _fault_plan(self, fault: PlannedFault, refs: list[TargetRef]) -> FaultPlan:
        step = fault.step
        return FaultPlan(
            kind=step.kind,
            target=step.target,
            params=fault.spec.model_dump(mode="json"),
            select=step.select,
            seed=self._seed,
            targets=refs,
        )
