"""Fakes for runner tests: a clock that jumps, a load whose health a fault controls, a recording injector."""

from __future__ import annotations

import math
import os
import signal
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hdrh.histogram import HdrHistogram

from engine.events import EventBus
from engine.journal import FaultRecord, Journal, LoadRecord
from engine.loader import load_document, validate_model
from engine.model import Experiment
from engine.plan import Plan, PlannedFault
from engine.runner import Runner, RunSettings
from engine.stack import LiveStack
from injectors.base import FaultPlan, FaultSpec, Injector, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, RollbackError, SelectionError
from injectors.selection import Selection
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription

T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self, start: float = T0) -> None:
        self.now = start
        self._base = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - self._base

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 1e-3)


@dataclass
class World:
    """The fake system: faults break it, rollbacks start its healing."""

    clock: FakeClock
    heal_s: float = 2.0
    broken_from_start: bool = False
    load_dies_at: float | None = None  # seconds after the load starts
    active: set[str] = field(default_factory=set)
    healed_at: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)

    def healthy(self, t: float) -> bool:
        return not self.broken_from_start and not self.active and t >= self.healed_at


class FakeLoad:
    """Emits one metric record per second (50 requests, 5 ms) — half failing while the world is broken."""

    def __init__(self, world: World, duration_s: float) -> None:
        self.world = world
        self.record = LoadRecord(
            locustfile="fake.py", users=10, spawn_rate=10, duration_s=duration_s, host="http://127.0.0.1:1"
        )
        self._next: int | None = None
        self._started = False
        self._stopped = False
        self.broken_seconds: list[int] = []

    def check_target(self) -> str | None:
        return None

    def start(self) -> None:
        self._started = True

    def wait_started(self, timeout_s: float) -> float:
        self.record.started_at = self.world.clock.time()
        self._next = math.ceil(self.record.started_at)
        return self.record.started_at

    def poll(self) -> list[dict[str, Any]]:
        if self._next is None:
            return []
        out = []
        end = (
            math.floor(min(self.world.clock.time(), self.record.started_at + self.record.duration_s))
            if self.record.started_at
            else 0
        )
        while self._next < end:
            ok = self.world.healthy(self._next + 0.5)
            if not ok:
                self.broken_seconds.append(self._next)
            hist = HdrHistogram(1, 60_000_000, 2)
            fail = 0 if ok else 25
            for _ in range(50 - fail):
                hist.record_value(5_000 if ok else 400_000)
            out.append(
                {
                    "type": "second",
                    "t": self._next,
                    "src": "fake:1",
                    "name": "POST /orders",
                    "method": "POST",
                    "n": 50,
                    "fail": fail,
                    "hist": hist.encode().decode(),
                    "users": 10,
                }
            )
            self._next += 1
        return out

    def running(self) -> bool:
        dies = self.world.load_dies_at
        if dies is not None and self.record.started_at and self.world.clock.time() >= self.record.started_at + dies:
            self.record.exit_code = 1
            return False
        return (
            self._started
            and not self._stopped
            and (
                self.record.started_at is None
                or self.world.clock.time() < self.record.started_at + self.record.duration_s + 5
            )
        )

    def wait_finished(self, timeout_s: float) -> bool:
        self._finish()
        return True

    def stop(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.record.finished_at = self.world.clock.time()
            self.record.exit_code = 0


class FakeSpec(FaultSpec):
    fail_inject: bool = False
    raise_in_inject: bool = False
    signal_in_inject: str | None = None
    signal_in_rollback: str | None = None
    fail_rollback: bool = False
    fail_verify: bool = False
    unresolvable: bool = False


class FakeInjector(Injector[FakeSpec]):
    kind: ClassVar[str] = "fake.break"
    spec_type: ClassVar[type[FaultSpec]] = FakeSpec
    summary: ClassVar[str] = "Breaks the fake world."
    world: ClassVar[World]

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        self.world.calls.append(("resolve", target))
        if self.spec.unresolvable:
            raise SelectionError("no instance has role 'leader' right now")
        return [TargetRef(id=f"{target}-1")]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        self.world.calls.append(("inject", ref.id))
        if self.spec.signal_in_inject:
            os.kill(os.getpid(), signal.Signals[self.spec.signal_in_inject])
        if self.spec.raise_in_inject:
            raise RuntimeError("injector bug")
        if self.spec.fail_inject:
            raise RuntimeError("could not inject")
        self.world.active.add(ref.id)
        return Outcome(detail={"broke": ref.id})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        self.world.calls.append(("rollback", ref.id))
        if self.spec.signal_in_rollback:
            os.kill(os.getpid(), signal.Signals[self.spec.signal_in_rollback])
        if self.spec.fail_rollback:
            raise RollbackError("cannot restart")
        if ref.id in self.world.active:
            self.world.active.discard(ref.id)
            self.world.healed_at = self.world.clock.time() + self.world.heal_s
        return Outcome(detail={"healed": ref.id}, measured={"healed_after_s": self.world.heal_s})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        self.world.calls.append(("verify", ref.id))
        if self.spec.fail_verify or ref.id in self.world.active:
            raise FaultStillPresentError(f"{ref.id} still broken")
        return Outcome()


HEADER = """\
version: 1
title: fake run
stack: {file: stack.json}
load: {locustfile: fake.py, users: 10, spawn_rate: 10, duration: 40s, warmup: 3s}
integrity: []
"""
STEADY = """\
- {name: error rate, metric: error_rate, max: 0.01}
- {name: p99, metric: latency_p99_ms, request: POST /orders, max: 100}
"""


def make_plan(tmp_path: Path, method_yaml: str, extra: str = "", steady: str = STEADY) -> Plan:
    path = tmp_path / "exp.yaml"
    path.write_text(
        HEADER
        + textwrap.dedent(extra)
        + "steady_state:\n"
        + textwrap.indent(textwrap.dedent(steady), "  ")
        + "method:\n"
        + textwrap.indent(textwrap.dedent(method_yaml), "  ")
    )
    (tmp_path / "fake.py").write_text("# locustfile placeholder\n")
    doc = load_document(path)
    experiment = validate_model(Experiment, doc)
    steps = sorted(experiment.method, key=lambda s: s.at)
    faults = [
        PlannedFault(i, step, FakeInjector, FakeSpec.model_validate(step.params)) for i, step in enumerate(steps, 1)
    ]
    return Plan(experiment, doc, faults, tmp_path / "fake.py")


def fake_stack() -> LiveStack:
    desc = StackDescription(
        name="fake",
        targets={
            "matcher": ProcessTarget(instances=[ProcessInstance(name="matcher-1", argv=["true"])]),
            "gateway": ProcessTarget(instances=[ProcessInstance(name="gateway-1", argv=["true"])]),
        },
    )
    return LiveStack(desc, None)


def run_fake(
    tmp_path: Path,
    method_yaml: str,
    *,
    extra: str = "",
    steady: str = STEADY,
    world: World | None = None,
    bus: EventBus | None = None,
    undo_ledger: Path | None = None,
    stack: LiveStack | None = None,
    prepare: Callable[[Runner], None] | None = None,
) -> tuple[Journal, World]:
    """Run a fake experiment; `prepare` may adjust the runner (e.g. its journal writer) before it executes."""
    clock = world.clock if world else FakeClock()
    world = world or World(clock)
    FakeInjector.world = world
    plan = make_plan(tmp_path, method_yaml, extra, steady)
    load = FakeLoad(world, plan.experiment.load.duration)
    settings = RunSettings(run_id="test-run", run_dir=tmp_path / "run", seed=7, undo_ledger=undo_ledger)
    runner = Runner(plan, stack or fake_stack(), load, settings, bus=bus, clock=clock)
    if prepare is not None:
        prepare(runner)
    return runner.execute(), world


def journal_with_faults(*injected: float | None) -> Journal:
    """A journal of one `process.kill` on `matcher` per time given (when it was injected; None: never), for the
    integrity and RPO tests."""
    faults = []
    for index, at in enumerate(injected, start=1):
        fault = FaultRecord(index=index, kind="process.kill", target="matcher", at_s=10, duration_s=5)
        fault.injected_at = at
        faults.append(fault)
    return Journal(
        run_id="r",
        tool_version="t",
        experiment_title="x",
        experiment_file="x.yaml",
        experiment_sha256="0",
        experiment={},
        seed=1,
        started_at=T0,
        faults=faults,
    )
