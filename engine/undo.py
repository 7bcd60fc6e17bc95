"""The undo ledger: every fault is written down (fsync'd) before it is injected, and crossed out once
its rollback is verified. A runner that dies in between — SIGKILL, power loss, OOM — leaves the
fault pending here, and `chaos.py recover` undoes it from the ledger alone; `chaos.py run` refuses
to start while anything is pending.

The ledger is `<runs dir>/undo-ledger.jsonl`: append-only JSON lines, `{"op": "pending", ...}` with
everything the rollback needs (fault kind, validated params, the plan, the stack description and
its file) and `{"op": "done", "key": ...}`. A torn last line (a crash mid-write) is ignored: its
fault was not injected yet, because injection waits for the write to be on disk.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.context import EngineContext
from engine.events import EventBus
from engine.journal import FaultRecord
from engine.locks import SystemBusyError, SystemLock, busy, identities
from engine.redact import MASK, redact
from engine.stack import LiveOverlay, LiveStack, read_description
from injectors.base import FaultPlan, FaultSpec, Injector, TargetResult
from injectors.registry import get_injector
from stackspec.targets import StackDescription

LEDGER_FILE = "undo-ledger.jsonl"


@dataclass(frozen=True)
class PendingUndo:
    key: str
    run_id: str
    index: int
    kind: str
    params: dict[str, Any]
    plan: FaultPlan
    stack: StackDescription
    stack_path: str | None
    at: float
    user_stack_file: str | None = None
    lock_keys: tuple[str, ...] = ()  # the identities the run held (engine.locks): busy while it lives

    @property
    def label(self) -> str:
        return f"{self.run_id} fault #{self.index} {self.kind} on {self.plan.target}"


class UndoLedger:
    """One ledger file; every append is flushed to disk before the call returns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_runs_dir(cls, runs_dir: Path) -> UndoLedger:
        return cls(runs_dir / LEDGER_FILE)

    def _append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # after a torn line (a crash mid-write), start a fresh one
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending_write(
        self, run_id: str, record: FaultRecord, plan: FaultPlan, stack: LiveStack, lock_keys: Sequence[str] = ()
    ) -> str:
        """Write a fault down before it is injected. Secrets are masked: the ledger keeps where the stack
        description lives (its file), and `recover` reads the values from there, never from here."""
        key = f"{run_id}#{record.index}"
        self._append(
            {
                "op": "pending",
                "key": key,
                "run_id": run_id,
                "index": record.index,
                "kind": record.kind,
                "params": redact(record.params),
                "plan": redact(plan.model_dump(mode="json")),
                "stack": redact(stack.description.model_dump(mode="json")),
                "stack_path": str(stack.path) if stack.path is not None else None,
                "user_stack_file": str(stack.overlay.stack_file) if stack.overlay is not None else None,
                "lock_keys": list(lock_keys),
                "at": time.time(),
            }
        )
        return key

    def done(self, key: str) -> None:
        self._append({"op": "done", "key": key, "at": time.time()})

    def pending(self) -> list[PendingUndo]:
        """Faults written down and not crossed out, oldest first."""
        if not self.path.exists():
            return []
        open_entries: dict[str, dict[str, Any]] = {}
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                if entry["op"] == "pending":
                    open_entries[entry["key"]] = entry
                elif entry["op"] == "done":
                    open_entries.pop(entry["key"], None)
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line: that fault never got as far as being injected
        return [
            PendingUndo(
                key=e["key"],
                run_id=e["run_id"],
                index=int(e["index"]),
                kind=e["kind"],
                params=dict(e["params"]),
                plan=FaultPlan.model_validate(e["plan"]),
                stack=StackDescription.model_validate(e["stack"]),
                stack_path=e.get("stack_path"),
                user_stack_file=e.get("user_stack_file"),
                at=float(e["at"]),
                lock_keys=tuple(e.get("lock_keys") or ()),
            )
            for e in open_entries.values()
        ]


@dataclass
class Recovery:
    undo: PendingUndo
    rollback: list[TargetResult]
    verify: list[TargetResult]
    error: str | None = None
    busy: str | None = None  # a live run holds this fault's system: it was left to that run

    @property
    def ok(self) -> bool:
        return (
            self.busy is None
            and self.error is None
            and all(r.ok for r in self.rollback)
            and all(r.ok for r in self.verify)
        )


def _live_stack(undo: PendingUndo) -> LiveStack:
    """The stack as it is now, never as the ledger saw it: a restart must not start a second copy.

    The reference stack's state file and a user's stack file (with its live overlay of restarted PIDs)
    are read again; the ledger's copy — secrets masked — is only the fallback when the file is gone,
    and then a restart that needs a masked value is refused rather than started with '***'.
    """
    path = Path(undo.stack_path) if undo.stack_path else None
    if path is not None and path.exists():
        return LiveStack(StackDescription.model_validate_json(path.read_text()), path)
    user_file = Path(undo.user_stack_file) if undo.user_stack_file else None
    if user_file is not None and user_file.is_file():
        overlay = LiveOverlay(user_file)
        return LiveStack(overlay.apply(read_description(user_file)), None, overlay)
    if MASK in json.dumps(undo.stack.model_dump(mode="json")):
        raise RuntimeError(
            f"the stack file {undo.user_stack_file or undo.stack_path} is gone and the undo ledger keeps no "
            "secrets: restore the file, then run `chaos.py recover` again"
        )
    return LiveStack(undo.stack, None)


def _keys(undo: PendingUndo) -> tuple[str, ...]:
    return undo.lock_keys or tuple(identities(undo.stack))


def left_by_dead_runs(ledger: UndoLedger) -> list[PendingUndo]:
    """Pending faults whose run is gone (their system is not locked): those are `recover`'s to undo.

    A live run's own faults are pending too, by design, until it rolls them back; they are never touched.
    """
    return [undo for undo in ledger.pending() if busy(_keys(undo)) is None]


def recover(ledger: UndoLedger) -> list[Recovery]:
    """Undo and verify every pending fault, newest first; cross out each one that is verified gone.

    Each fault is undone holding its system's lock, so a live run's fault is never ended by `recover`:
    such a fault is reported `busy` and left alone.
    """
    results = []
    for undo in reversed(ledger.pending()):
        rollback: list[TargetResult] = []
        verify: list[TargetResult] = []
        try:
            with SystemLock(_keys(undo), f"chaos.py recover (pid {os.getpid()})"):
                try:
                    kind = get_injector(undo.kind)
                    injector: Injector[FaultSpec] = kind(kind.parse_params(undo.params))
                    ctx = EngineContext(undo.run_id, _live_stack(undo), seed=undo.plan.seed or 0, bus=EventBus())
                    rollback = injector.rollback(undo.plan, ctx)
                    verify = injector.verify_gone(undo.plan, ctx)
                    outcome = Recovery(undo, rollback, verify)
                except Exception as exc:  # one fault's broken undo must not stop the others
                    outcome = Recovery(undo, rollback, verify, error=f"{type(exc).__name__}: {exc}")
                if outcome.ok:
                    ledger.done(undo.key)
        except SystemBusyError as exc:
            outcome = Recovery(undo, [], [], busy=str(exc))
        results.append(outcome)
    return results
