"""One experiment's engine events as the runbook's conditions (docs/drills.md: `when`), and the drill's phase."""

from __future__ import annotations

from drilling.runbook import Occurrence
from drilling.state import DrillState
from engine.events import (
    Event,
    FaultInjected,
    FaultRolledBack,
    LoadStarted,
    PhaseStarted,
    ProbeObserved,
    RunFinished,
)


class ExperimentListener:
    """Subscribed to experiment `number`'s event bus (of `count`); tells the drill's state what happened."""

    def __init__(self, state: DrillState, number: int, count: int) -> None:
        self.state = state
        self.number = number
        self.count = count
        self.injected: list[float] = []
        self.failing = False

    def _occur(self, condition: str, t: float, detail: str = "") -> None:
        self.state.observe(Occurrence(condition, self.number, t, detail))

    def __call__(self, event: Event) -> None:
        if isinstance(event, PhaseStarted):
            self.state.set_phase(f"experiment {self.number}/{self.count}: {event.phase}")
        elif isinstance(event, LoadStarted):
            self._occur("load_started", event.t)
        elif isinstance(event, FaultInjected) and event.ok:
            self.injected.append(event.t)
            self._occur("fault_injected", event.t, f"#{event.index} {event.kind} on {event.target}")
        elif isinstance(event, ProbeObserved):
            self._probe(event)
        elif isinstance(event, FaultRolledBack) and event.ok and event.verified:
            self._occur("fault_rolled_back", event.t, f"#{event.index} {event.kind}")
        elif isinstance(event, RunFinished):
            self.state.set_phase(f"experiment {self.number}/{self.count}: finished ({event.verdict})")

    def _probe(self, event: ProbeObserved) -> None:
        # The live judge runs a second behind: a second that ended before the injection is not detection.
        after_fault = bool(self.injected) and event.second + 1 > self.injected[0]
        if not event.ok and after_fault and not self.failing:
            self.failing = True
            self._occur("steady_state_failed", event.t, ", ".join(event.failing))
        elif event.ok and self.failing:
            self.failing = False
            self._occur("steady_state_restored", event.t)
