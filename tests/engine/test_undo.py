"""The undo ledger on disk: written before injection, crossed out after a verified rollback."""

from __future__ import annotations

from pathlib import Path

from engine.journal import FaultRecord
from engine.stack import LiveStack
from engine.undo import UndoLedger
from injectors.base import FaultPlan, TargetRef
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription


def stack() -> LiveStack:
    target = ProcessTarget(instances=[ProcessInstance(name="svc-1", argv=["true"])])
    return LiveStack(StackDescription(name="s", targets={"svc": target}), None)


def fault(index: int) -> tuple[FaultRecord, FaultPlan]:
    record = FaultRecord(index=index, kind="process.kill", target="svc", at_s=5, duration_s=5, params={"x": 1})
    plan = FaultPlan(kind="process.kill", target="svc", targets=[TargetRef(id="svc-1", detail={"pid": 42})])
    return record, plan


def test_pending_until_crossed_out_and_a_torn_line_is_ignored(tmp_path: Path) -> None:
    ledger = UndoLedger(tmp_path / "undo-ledger.jsonl")
    assert ledger.pending() == []
    first = ledger.pending_write("run-a", *fault(1), stack())
    second = ledger.pending_write("run-a", *fault(2), stack())
    ledger.done(first)
    with ledger.path.open("a") as handle:
        handle.write('{"op": "pending", "key": "run-a#3", "run_i')  # a crash in the middle of a write
    third = ledger.pending_write("run-b", *fault(1), stack())  # appended after the torn line, still whole
    ledger.done(third)
    (left,) = ledger.pending()
    assert (left.key, left.index, left.kind, left.params) == (second, 2, "process.kill", {"x": 1})
    assert left.plan.targets[0].detail == {"pid": 42} and left.stack.name == "s" and left.stack_path is None
    assert left.label == "run-a fault #2 process.kill on svc"
    assert ledger.path.stat().st_mode & 0o777 == 0o600
