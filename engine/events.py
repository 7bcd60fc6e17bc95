"""Typed run events and the bus that delivers them; a listener's error is logged, never raised.

The console, the journal and (later) drill timers and notifiers are listeners. Events are
past-tense facts, each with the wall-clock time it happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"
    t: float = field(default_factory=time.time, kw_only=True)

    def message(self) -> str:
        return self.type

    def data(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("t", None)
        return values


@dataclass(frozen=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    run_id: str
    title: str
    seed: int

    def message(self) -> str:
        return f"run {self.run_id} started: {self.title} (seed {self.seed})"


@dataclass(frozen=True)
class PhaseStarted(Event):
    type: ClassVar[str] = "phase_started"
    phase: str

    def message(self) -> str:
        return f"{self.phase} started"


@dataclass(frozen=True)
class PhaseFinished(Event):
    type: ClassVar[str] = "phase_finished"
    phase: str
    status: str
    detail: str = ""

    def message(self) -> str:
        return f"{self.phase} {self.status}" + (f": {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class LoadStarted(Event):
    type: ClassVar[str] = "load_started"
    users: int
    duration_s: float
    host: str

    def message(self) -> str:
        return f"load started: {self.users} users for {self.duration_s:g}s against {self.host}"


@dataclass(frozen=True)
class FaultInjected(Event):
    type: ClassVar[str] = "fault_injected"
    index: int
    kind: str
    target: str
    targets: list[str]
    ok: bool
    error: str | None = None

    def message(self) -> str:
        hit = ", ".join(self.targets) or "nothing"
        state = "injected" if self.ok else f"FAILED to inject ({self.error})"
        return f"fault #{self.index} {self.kind} on {self.target} [{hit}] {state}"


@dataclass(frozen=True)
class FaultRolledBack(Event):
    type: ClassVar[str] = "fault_rolled_back"
    index: int
    kind: str
    ok: bool
    verified: bool
    error: str | None = None

    def message(self) -> str:
        if self.ok and self.verified:
            return f"fault #{self.index} {self.kind} rolled back and verified gone"
        return f"fault #{self.index} {self.kind} ROLLBACK FAILED: {self.error}"


@dataclass(frozen=True)
class ProbeObserved(Event):
    """The steady state changed: it stopped holding, holds again, or other probes fail (not every sample)."""

    type: ClassVar[str] = "probe_observed"
    second: float
    ok: bool
    failing: list[str]

    def message(self) -> str:
        if self.ok:
            return "steady state holds"
        return "steady state deviates: " + ", ".join(self.failing)


@dataclass(frozen=True)
class Noted(Event):
    type: ClassVar[str] = "note"
    text: str
    details: dict[str, Any] = field(default_factory=dict)

    def message(self) -> str:
        return self.text


@dataclass(frozen=True)
class RunFinished(Event):
    type: ClassVar[str] = "run_finished"
    verdict: str
    exit_code: int
    summary: str

    def message(self) -> str:
        return f"run finished: {self.verdict.upper()} (exit {self.exit_code}) {self.summary}"


Listener = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must never break a run (or its rollback)
                log.exception("event listener %r failed on %s", listener, event.type)
