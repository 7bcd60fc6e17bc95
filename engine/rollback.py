"""Pending rollbacks: registered before each injection, undone last-in first-out, each one verified.

Every registered fault is undone exactly once: at the end of its duration, or when the run unwinds
(normal end, exception, signal). One fault's failed rollback never skips another's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import LedgerWriteError, SkipRollback
from engine.events import EventBus, FaultRolledBack, Noted
from engine.journal import FaultRecord
from engine.stack import LiveStack
from engine.undo import UndoLedger
from injectors.base import FaultPlan, FaultSpec, Injector, RunContext

log = logging.getLogger(__name__)


@dataclass
class Pending:
    record: FaultRecord
    injector: Injector[FaultSpec]
    plan: FaultPlan
    ledger_key: str | None = None


def measured(record: FaultRecord) -> dict[str, float]:
    """The times injectors measured (each target result's `measured`), merged in action order."""
    found: dict[str, float] = {}
    for result in (*record.inject, *record.rollback, *record.verify):
        found |= result.measured
    return found


class Rollbacks:
    def __init__(
        self,
        ctx: RunContext,
        bus: EventBus,
        changed: Callable[[], None],
        now: Callable[[], float] = time.time,
        ledger: UndoLedger | None = None,
        stack: LiveStack | None = None,
        lock_keys: tuple[str, ...] = (),
    ) -> None:
        self._ctx = ctx
        self._ledger = ledger
        self._lock_keys = lock_keys
        self._stack = stack
        self._now = now
        self._bus = bus
        self._changed = changed
        self._pending: list[Pending] = []

    def register(self, record: FaultRecord, injector: Injector[FaultSpec], plan: FaultPlan) -> None:
        """Call before injecting: from here on the fault will be undone whatever happens — by this process,
        or, if it dies first, by `chaos.py recover` from the undo ledger (on disk before this returns).

        Raises LedgerWriteError when the ledger cannot be written: then the fault must not be injected.
        """
        key = None
        if self._ledger is not None and self._stack is not None:
            try:
                key = self._ledger.pending_write(self._ctx.run_id, record, plan, self._stack, self._lock_keys)
            except OSError as exc:
                raise LedgerWriteError(
                    f"cannot write the undo ledger {self._ledger.path}: {exc.strerror or exc}"
                ) from exc
        self._pending.append(Pending(record, injector, plan, key))

    def pending(self) -> list[FaultRecord]:
        return [p.record for p in self._pending]

    def undo(self, index: int) -> bool:
        """Undo one fault now (its duration is over). True when rolled back and verified."""
        for item in self._pending:
            if item.record.index == index:
                ok = self._undo(item)  # stays pending until done: a signal in the middle leaves it to undo_all
                self._pending.remove(item)
                return ok
        return True

    def undo_all(self) -> bool:
        """Undo everything still pending, newest first; True when every one was rolled back and verified.

        A second Ctrl-C (SkipRollback) stops here: every fault not yet undone is marked rollback_failed
        and stays pending in the undo ledger, so `chaos.py recover` can undo it later.
        """
        ok = True
        try:
            while self._pending:
                ok = self._undo(self._pending[-1]) and ok
                self._pending.pop()
        except SkipRollback:
            self._leave_in_place()
            return False
        return ok

    def _leave_in_place(self) -> None:
        left = list(reversed(self._pending))
        self._pending.clear()
        for item in left:
            record = item.record
            record.status = "rollback_failed"
            record.ended_at = self._now()
            note = "rollback skipped by a second Ctrl-C: the fault may still be in place (run `chaos.py recover`)"
            record.error = note if record.error is None else f"{record.error}; {note}"
        names = ", ".join(f"#{item.record.index} {item.record.kind}" for item in left)
        self._bus.emit(
            Noted(
                text=f"rollback SKIPPED by a second Ctrl-C; left in place: {names}",
                details={"left_in_place": [item.record.index for item in left]},
                t=self._now(),
            )
        )
        try:
            self._changed()
        except Exception:
            log.exception("saving the journal after a skipped rollback failed")

    def _undo(self, item: Pending) -> bool:
        record = item.record
        error: str | None = None
        try:
            record.rollback = item.injector.rollback(item.plan, self._ctx)
            record.verify = item.injector.verify_gone(item.plan, self._ctx)
        except Exception as exc:  # an injector bug must not stop the other rollbacks
            log.exception("rollback of fault #%s raised", record.index)
            error = f"{type(exc).__name__}: {exc}"
        record.measured = measured(record)
        failures = [r for r in record.rollback + record.verify if not r.ok]
        rolled_ok = error is None and all(r.ok for r in record.rollback)
        verified = error is None and bool(record.verify or not item.plan.targets) and all(r.ok for r in record.verify)
        if failures and error is None:
            error = "; ".join(f"{r.action} {r.id}: {r.error}" for r in failures)
        record.ended_at = self._now()
        record.status = "rolled_back" if rolled_ok and verified else "rollback_failed"
        if rolled_ok and verified and item.ledger_key is not None and self._ledger is not None:
            self._cross_out(item)  # a failed one stays pending for `chaos.py recover`
        if error:
            record.error = error if record.error is None else f"{record.error}; {error}"
        self._bus.emit(
            FaultRolledBack(index=record.index, kind=record.kind, ok=rolled_ok, verified=verified, error=error)
        )
        try:
            self._changed()
        except Exception:  # recording the rollback must never stop the next one (the writer keeps the failure)
            log.exception("saving the journal after the rollback of fault #%s failed", record.index)
        return rolled_ok and verified

    def _cross_out(self, item: Pending) -> None:
        """Mark the fault done in the ledger; if that write fails, it stays pending: `recover` verifies it again."""
        assert self._ledger is not None and item.ledger_key is not None
        try:
            self._ledger.done(item.ledger_key)
        except OSError as exc:
            self._bus.emit(
                Noted(
                    text=f"fault #{item.record.index} is rolled back and verified, but the undo ledger could not be "
                    f"updated ({exc.strerror or exc}): it stays listed until `chaos.py recover` verifies it again",
                    t=self._now(),
                )
            )
