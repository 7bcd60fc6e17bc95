"""The fault executor: every way an injection can go ends in one fault_injected event that says what the
fault's record says, and a fault that is refused at injection time is never injected nor registered."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import pytest

from engine.events import Event, FaultInjected
from engine.runner import Runner
from injectors.base import RunContext, TargetRef
from injectors.errors import SelectionError
from injectors.selection import Selection
from tests.engine.fakes import FakeInjector, run_fake


class ChangingInjector(FakeInjector):
    """Resolves to as many targets as `answers` says, call by call (preflight, then injection), or raises."""

    answers: ClassVar[list[int | Exception]] = []

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        answer = ChangingInjector.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return [TargetRef(id=f"{target}-{i}") for i in range(1, answer + 1)]


FAULT = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher%s}\n"


@pytest.mark.parametrize(
    ("answers", "params", "targets", "error"),
    [
        ([1, 1], "", ["matcher-1"], None),
        ([1, 1], ", params: {fail_inject: true}", ["matcher-1"], "matcher-1: "),
        ([1, SelectionError("no instance has role 'leader' right now")], "", [], "no instance has role 'leader'"),
        ([1, 2], "", [], "refused: it resolves to 2 targets, over guards.max_targets_per_fault (1)"),
    ],
    ids=["injected", "inject-failed", "unresolvable-at-injection", "too-wide-at-injection"],
)
def test_one_fault_injected_event_tells_what_the_record_says(
    tmp_path: Path, answers: list[int | Exception], params: str, targets: list[str], error: str | None
) -> None:
    ChangingInjector.answers = list(answers)
    told: list[tuple[FaultInjected, str, str | None]] = []

    def prepare(runner: Runner) -> None:
        runner.plan.faults[0] = dataclasses.replace(runner.plan.faults[0], injector=ChangingInjector)

        def listen(event: Event) -> None:
            if isinstance(event, FaultInjected):
                record = runner.journal.faults[event.index - 1]
                told.append((event, record.status, record.error))

        runner.bus.subscribe(listen)

    journal, world = run_fake(tmp_path, FAULT % params, extra="guards: {max_targets_per_fault: 1}\n", prepare=prepare)
    assert ChangingInjector.answers == []  # resolved at preflight and again at injection
    ((event, status, record_error),) = told
    assert (event.index, event.kind, event.target, event.targets) == (1, "fake.break", "matcher", targets)
    assert event.ok == (status == "injected") == (error is None)
    assert event.error == record_error
    if error is not None:
        assert record_error is not None and record_error.startswith(error)
    if not targets:  # refused before injecting: nothing to roll back, nothing done
        assert [c for c in world.calls if c[0] in ("inject", "rollback")] == []
        assert journal.faults[0].status == "failed" and journal.faults[0].plan is None
