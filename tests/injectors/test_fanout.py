"""The base class's fan-out: every target acted on, at most `max_parallel` at once, results in plan order."""

from __future__ import annotations

import itertools
import threading
import time
from typing import ClassVar

import pytest

from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan, FaultSpec, Injector, Outcome, RunContext, TargetRef
from injectors.selection import Selection
from stackspec.targets import StackDescription


class _Spec(FaultSpec):
    pass


class _Recorder(Injector[_Spec]):
    """Sleeps per target and records how many targets were in flight at once; 't3' always fails."""

    kind: ClassVar[str] = "test.fanout"
    spec_type: ClassVar[type[FaultSpec]] = _Spec
    hold_s: ClassVar[float] = 0.05

    def __init__(self, spec: _Spec) -> None:
        super().__init__(spec)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.done: list[str] = []

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        return []

    def _act(self, ref: TargetRef) -> Outcome:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(self.hold_s)
            if ref.id == "t3":
                raise RuntimeError("target t3 refused")
            return Outcome(detail={"thread": threading.current_thread().name})
        finally:
            with self.lock:
                self.in_flight -= 1
                self.done.append(ref.id)

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return self._act(ref)

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return self._act(ref)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return self._act(ref)


class _Parallel(_Recorder):
    max_parallel: ClassVar[int] = 4


CTX = EngineContext("run", LiveStack(StackDescription(name="none"), None), seed=1, bus=EventBus())


def _plan(n: int) -> FaultPlan:
    return FaultPlan(kind="test.fanout", target="t", targets=[TargetRef(id=f"t{i}") for i in range(n)])


@pytest.mark.parametrize("action", ["inject", "rollback", "verify_gone"])
def test_parallel_fan_out_is_bounded_ordered_and_never_skips_a_target(action: str) -> None:
    injector = _Parallel(_Spec())
    plan = _plan(12)
    started = time.monotonic()
    results = getattr(injector, action)(plan, CTX)
    took = time.monotonic() - started
    assert [r.id for r in results] == [f"t{i}" for i in range(12)]  # plan order, whatever finished first
    assert sorted(injector.done) == sorted(r.id for r in results)  # every target was acted on
    assert [r.ok for r in results] == [i != 3 for i in range(12)]
    assert results[3].error == "RuntimeError: target t3 refused"
    assert injector.most == 4  # concurrency really happened, and never beyond the bound
    assert took < 12 * _Recorder.hold_s  # generous: 3 waves of 4 would take ~0.15 s
    for r in results:  # each target timed on its own
        assert r.finished_at - r.started_at >= _Recorder.hold_s * 0.9
    assert len({r.detail["thread"] for r in results if r.ok}) > 1


def test_sequential_by_default_as_before() -> None:
    injector = _Recorder(_Spec())
    assert injector.parallelism() == 1
    results = injector.inject(_plan(5), CTX)
    assert injector.most == 1
    assert injector.done == [f"t{i}" for i in range(5)]  # strictly one after the other
    assert [r.ok for r in results] == [True, True, True, False, True]
    assert all(a.finished_at <= b.started_at for a, b in itertools.pairwise(results))
    assert {r.detail["thread"] for r in results if r.ok} == {threading.current_thread().name}


def test_more_workers_than_targets_and_no_targets() -> None:
    injector = _Parallel(_Spec())
    assert [r.ok for r in injector.rollback(_plan(2), CTX)] == [True, True]
    assert injector.most <= 2
    assert injector.rollback(_plan(0), CTX) == []


def test_an_interrupt_starts_no_further_targets() -> None:
    class _Interrupting(_Parallel):
        def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
            if ref.id == "t0":
                raise KeyboardInterrupt  # only Exception is collected per target; this ends the fan-out
            return self._act(ref)

    injector = _Interrupting(_Spec())
    with pytest.raises(KeyboardInterrupt):
        injector.inject(_plan(40), CTX)
    assert len(injector.done) < 39  # the queued targets were cancelled, not run
