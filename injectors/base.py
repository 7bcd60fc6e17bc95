"""The injector contract: fault specs, plans, outcomes and per-target results, the run context, the base class.

An injector acts in three steps, each on concrete targets:

1. `resolve` picks the targets (no side effects) and returns them for a `FaultPlan` that is pure data;
   the engine writes the plan down *before* injecting, so that a crashed run can be undone later.
2. `inject` puts the fault in place on every target of the plan.
3. `rollback` undoes it from the plan alone (idempotent, safe after a partial inject), and
   `verify_gone` proves the revert: the process is back, the toxic is absent.

A kind implements `find_targets` and the per-target methods (`inject_one`, `rollback_one`, `verify_one`,
each returning an `Outcome`); the base class fans out over the targets, times each one, never lets one
target's failure skip the others, and translates protocol clients' errors at its edge
(injectors/errors.py). docs/writing-an-injector.md walks through a whole kind.
"""

from __future__ import annotations

import contextlib
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from injectors.errors import Step, translated
from injectors.selection import Selection
from stackspec.targets import ProcessInstance, StackDescription, Target


class FaultSpec(BaseModel):
    """Base of every kind's typed `params`: units in field names, unknown keys refused, no coercion.

    Strict: a string is not a number (`latency_ms: "150"` is an error), a number is not a bool; an
    int is still a valid float.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


SpecT = TypeVar("SpecT", bound=FaultSpec, covariant=True)


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


class Outcome(BaseModel):
    """What one action did to one target: `detail` for the journal, and the times it `measured`, in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detail: dict[str, JsonValue] = Field(default_factory=dict)
    measured: dict[str, float] = Field(
        default_factory=dict, description="e.g. promoted_after_s: until Sentinel promoted a replica."
    )

    def __or__(self, other: Outcome) -> Outcome:
        """Both outcomes in one; where both name a key, `other`'s value wins."""
        return Outcome(detail={**self.detail, **other.detail}, measured={**self.measured, **other.measured})


Action = Literal["inject", "rollback", "verify"]


def _numbers(values: object) -> dict[str, float]:
    if not isinstance(values, Mapping):
        return {}
    return {str(k): float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}


class TargetResult(BaseModel):
    """What one action did to one target, with its own timing."""

    id: str
    action: Action
    ok: bool
    started_at: float
    finished_at: float
    detail: dict[str, Any] = Field(default_factory=dict)
    measured: dict[str, float] = Field(
        default_factory=dict, description="Times the action measured, in seconds (the outcome's `measured`)."
    )
    error: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _measured_from_detail(cls, data: Any) -> Any:
        """Journals written before `measured` was a field kept it in `detail["measured"]`: its numbers move here."""
        if isinstance(data, dict) and "measured" not in data:
            detail = data.get("detail")
            if isinstance(detail, dict) and "measured" in detail:
                rest = {k: v for k, v in detail.items() if k != "measured"}
                return {**data, "detail": rest, "measured": _numbers(detail["measured"])}
        return data


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
    """Base class of every fault kind: set `kind`, `spec_type` and a one-sentence docstring (its `summary`)."""

    kind: ClassVar[str]  # 'domain.action'
    spec_type: ClassVar[type[FaultSpec]]
    summary: ClassVar[str]  # the class docstring's first paragraph, unless the class sets it
    target_kinds: ClassVar[tuple[str, ...]] = ("process",)
    selectable: ClassVar[bool] = True  # False: the kind picks its own targets (e.g. the Redis primary)
    # How many targets inject/rollback/verify act on at once; 1 (one after the other) unless a kind
    # whose per-target calls are independent (e.g. one API request per pod) says otherwise.
    max_parallel: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "summary" not in cls.__dict__ and cls.__doc__:
            cls.summary = " ".join(cls.__doc__.strip().split("\n\n")[0].split())

    def __init__(self, spec: SpecT) -> None:
        self._spec = spec

    @property
    def spec(self) -> SpecT:
        """The validated params of this fault."""
        return self._spec

    @classmethod
    def parse_params(cls, params: Mapping[str, object]) -> FaultSpec:
        """Validate `params` against this kind's spec (raises pydantic.ValidationError)."""
        return cls.spec_type.model_validate(params)

    @classmethod
    def referenced_targets(cls, spec: FaultSpec) -> dict[str, str]:
        """Other stack targets the params name (param → target), checked before the run like `target`."""
        return {}

    # -- what the engine calls: client errors are translated here -----------------------------------

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        """The concrete targets of `target` that `select` picks; changes nothing (also run at preflight)."""
        with self._edge("resolve"):
            return self.find_targets(target, select, ctx)

    def inject(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        with self._edge("inject"):
            return self.inject_all(plan, ctx)

    def rollback(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        with self._edge("rollback"):
            return self.rollback_all(plan, ctx)

    def verify_gone(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        with self._edge("verify"):
            return self.verify_all(plan, ctx)

    @contextlib.contextmanager
    def _edge(self, step: Step) -> Iterator[None]:
        with translated(step), self.session():
            yield

    # -- what a kind implements --------------------------------------------------------------------

    @abstractmethod
    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        """Choose the concrete targets, recording in each what undoing needs; must not change anything."""

    @abstractmethod
    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        """Put the fault in place on one target; returns what was done."""

    @abstractmethod
    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        """Undo the fault on one target; idempotent and safe when inject never ran or half ran."""

    @abstractmethod
    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        """Prove the fault is gone from one target; raises FaultStillPresentError if not."""

    # -- what a kind may override ------------------------------------------------------------------

    def session(self) -> AbstractContextManager[object]:
        """Held around each step (resolve, inject, rollback, verify): e.g. SSH connections for one call."""
        return contextlib.nullcontext()

    def parallelism(self) -> int:
        """How many targets to act on at once; `max_parallel` unless the spec says otherwise."""
        return self.max_parallel

    def inject_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        """`inject_one` on every target; override to act on the plan as a whole (then call super)."""
        return self.each(plan, "inject", lambda ref: self.inject_one(ref, plan, ctx))

    def rollback_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        return self.each(plan, "rollback", lambda ref: self.rollback_one(ref, plan, ctx))

    def verify_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        return self.each(plan, "verify", lambda ref: self.verify_one(ref, plan, ctx))

    def each(self, plan: FaultPlan, action: Action, fn: Callable[[TargetRef], Outcome]) -> list[TargetResult]:
        """Run `fn` on every target of the plan, `parallelism()` at once; results in the plan's order."""
        return fan_out(plan, action, fn, self.parallelism())


def _one(ref: TargetRef, action: Action, fn: Callable[[TargetRef], Outcome]) -> TargetResult:
    started = time.time()
    try:
        outcome = fn(ref)
    except Exception as exc:  # collected, never raised: the other targets still need the action
        return TargetResult(
            id=ref.id,
            action=action,
            ok=False,
            started_at=started,
            finished_at=time.time(),
            error=f"{type(exc).__name__}: {exc}",
        )
    return TargetResult(
        id=ref.id,
        action=action,
        ok=True,
        started_at=started,
        finished_at=time.time(),
        detail=dict(outcome.detail),
        measured=dict(outcome.measured),
    )


def fan_out(
    plan: FaultPlan, action: Action, fn: Callable[[TargetRef], Outcome], parallel: int = 1
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
