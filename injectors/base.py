"""The injector contract: fault specs, plans, per-target results, the run context, and the base class.

An injector acts in three steps, each on concrete targets:

1. `resolve` picks the targets (no side effects) and returns a `FaultPlan` that is pure data;
   the engine writes it down *before* injecting, so that a crashed run can be undone later.
2. `inject` puts the fault in place on every target of the plan.
3. `rollback` undoes it from the plan alone (idempotent, safe after a partial inject), and
   `verify_gone` proves the revert: the process is back, the toxic is absent.

Subclasses implement the per-target methods (`inject_one`, `rollback_one`, `verify_one`); the base
class fans out over targets, times each one and never lets one target's failure skip the others.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from injectors.selection import Selection
from stackspec.targets import ProcessInstance, StackDescription, Target


class FaultSpec(BaseModel):
    """Base of every injector's typed `params` (units in field names, unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


SpecT = TypeVar("SpecT", bound=FaultSpec)


class TargetRef(BaseModel):
    """One concrete thing a fault acts on, with what it takes to undo the fault from a new process."""

    id: str
    detail: dict[str, Any] = Field(default_factory=dict)


class FaultPlan(BaseModel):
    """A fault bound to concrete targets. Pure data: journaled and written to the undo ledger."""

    kind: str
    target: str
    params: dict[str, Any] = Field(default_factory=dict)
    select: Selection | None = None
    seed: int | None = None
    targets: list[TargetRef] = Field(default_factory=list)


Action = Literal["inject", "rollback", "verify"]


class TargetResult(BaseModel):
    """What one action did to one target, with its own timing."""

    id: str
    action: Action
    ok: bool
    started_at: float
    finished_at: float
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class StackAccess(Protocol):
    """The run's view of the stack description."""

    @property
    def description(self) -> StackDescription: ...

    def target(self, name: str) -> Target:
        """The target group called `name`; raises TargetNotFoundError naming the known ones."""
        ...

    def replace_instance(self, target: str, instance: ProcessInstance) -> None:
        """Record a changed instance (new PID after a restart, PID gone after a kill)."""
        ...


class RunContext(Protocol):
    """What an injector receives from the engine: never module globals."""

    @property
    def run_id(self) -> str: ...

    @property
    def stack(self) -> StackAccess: ...

    @property
    def rng(self) -> random.Random: ...

    def note(self, message: str, **data: Any) -> None:
        """Add a timestamped note to the run's journal (and console)."""
        ...


class Injector(ABC, Generic[SpecT]):
    """Base class of all injectors. Subclasses set `kind`, `spec_type` and `summary`."""

    kind: ClassVar[str]
    spec_type: ClassVar[type[FaultSpec]]
    summary: ClassVar[str]
    target_kinds: ClassVar[tuple[str, ...]] = ("process",)
    selectable: ClassVar[bool] = True  # False: the kind picks its own targets (e.g. the Redis primary)
    # How many targets inject/rollback/verify act on at once; 1 (one after the other) unless a kind
    # whose per-target calls are independent (e.g. one API request per pod) says otherwise.
    max_parallel: ClassVar[int] = 1

    def __init__(self, spec: SpecT) -> None:
        self.spec = spec

    @classmethod
    def parse_params(cls, params: dict[str, Any]) -> FaultSpec:
        """Validate `params` against this kind's spec (raises pydantic.ValidationError)."""
        return cls.spec_type.model_validate(params)

    @classmethod
    def referenced_targets(cls, spec: FaultSpec) -> dict[str, str]:
        """Other stack targets the params name (param → target), checked before the run like `target`."""
        return {}

    @abstractmethod
    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        """Choose the concrete targets; must not change anything."""

    @abstractmethod
    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        """Put the fault in place on one target; returns what was done."""

    @abstractmethod
    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        """Undo the fault on one target; idempotent and safe when inject never ran or half ran."""

    @abstractmethod
    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        """Prove the fault is gone from one target; raises FaultStillPresentError if not."""

    def parallelism(self) -> int:
        """How many targets to act on at once; `max_parallel` unless the spec says otherwise."""
        return self.max_parallel

    def inject(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        return _each(plan, "inject", lambda ref: self.inject_one(ref, plan, ctx), self.parallelism())

    def rollback(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        return _each(plan, "rollback", lambda ref: self.rollback_one(ref, plan, ctx), self.parallelism())

    def verify_gone(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        return _each(plan, "verify", lambda ref: self.verify_one(ref, plan, ctx), self.parallelism())


def _one(ref: TargetRef, action: Action, fn: Callable[[TargetRef], dict[str, Any]]) -> TargetResult:
    started = time.time()
    try:
        detail = fn(ref)
    except Exception as exc:  # collected, never raised: the other targets still need the action
        return TargetResult(
            id=ref.id,
            action=action,
            ok=False,
            started_at=started,
            finished_at=time.time(),
            error=f"{type(exc).__name__}: {exc}",
        )
    return TargetResult(id=ref.id, action=action, ok=True, started_at=started, finished_at=time.time(), detail=detail)


def _each(
    plan: FaultPlan, action: Action, fn: Callable[[TargetRef], dict[str, Any]], parallel: int = 1
) -> list[TargetResult]:
    """Run `fn` on every target of the plan, at most `parallel` at once; results in the plan's order.

    A failure on one target never skips the others; each result carries its own timing.
    """
    if parallel <= 1 or len(plan.targets) <= 1:
        return [_one(ref, action, fn) for ref in plan.targets]
    pool = ThreadPoolExecutor(max_workers=min(parallel, len(plan.targets)), thread_name_prefix=f"chaos-{action}")
    try:
        futures = [pool.submit(_one, ref, action, fn) for ref in plan.targets]
        return [future.result() for future in futures]
    finally:
        # On an interrupt, targets not yet started are not started; the ones running are waited for.
        pool.shutdown(wait=True, cancel_futures=True)
