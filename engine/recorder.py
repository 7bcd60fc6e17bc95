"""The run's record as the runner keeps it: the journal, its phases, events and errors, written as they happen.

Every event on the bus lands in the journal and in its event log at once (engine.writer); the whole
journal is rewritten at the boundaries. Nothing here raises for a failed write: the writer keeps the
failure and the abort watch stops the run at its next tick.
"""

from __future__ import annotations

import traceback

from engine.context import Clock
from engine.errors import ChaosError
from engine.events import Event, EventBus, Noted, PhaseFinished, PhaseStarted
from engine.journal import ErrorRecord, EventRecord, Journal, PhaseName, PhaseRecord, PhaseStatus
from engine.writer import JournalWriter
from injectors.errors import InjectorError


class RunRecorder:
    """Keeps one run's journal and has it written; listens to the bus from the moment it is made.

    `writer` may be replaced before the run starts (tests hand in one that fails); everything reaches
    it through the recorder, so the current one is always used.
    """

    def __init__(self, journal: Journal, writer: JournalWriter, clock: Clock, bus: EventBus) -> None:
        self.journal = journal
        self.writer = writer
        self._clock = clock
        self._bus = bus
        bus.subscribe(self.record_event)

    def record_event(self, event: Event) -> None:
        self.journal.events.append(EventRecord(t=event.t, type=event.type, message=event.message(), data=event.data()))
        self.writer.event_added(self.journal)

    def save(self) -> None:
        """Rewrite the whole journal; never raises (the writer keeps a failure; the run aborts at its next tick)."""
        self.writer.save(self.journal)

    def finish(self) -> None:
        """The run's last word: the whole journal, with the room the reserve gave back."""
        self.writer.finish(self.journal)

    def phase(self, name: PhaseName) -> None:
        self.journal.phases.append(PhaseRecord(name=name, started_at=self._clock.time()))
        self._bus.emit(PhaseStarted(phase=name, t=self._clock.time()))

    def end_phase(self, name: PhaseName, status: PhaseStatus, detail: str = "") -> None:
        record = self.journal.phase(name)
        if record is None or record.finished_at is not None:
            return
        record.finished_at, record.status, record.detail = self._clock.time(), status, detail
        self._bus.emit(PhaseFinished(phase=name, status=status, detail=detail, t=self._clock.time()))

    def close_open_phases(self, status: PhaseStatus) -> None:
        for record in self.journal.phases:
            if record.finished_at is None:
                self.end_phase(record.name, status)

    def current_phase(self) -> str:
        open_phases = [p.name for p in self.journal.phases if p.finished_at is None]
        return open_phases[-1] if open_phases else "run"

    def error(self, phase: str, exc: BaseException) -> None:
        """Journal an error (our own errors by their message, anything else with its type) and say so."""
        message = (
            str(exc)
            if isinstance(exc, ChaosError | InjectorError)
            else "".join(traceback.format_exception_only(type(exc), exc)).strip()
        )
        self.journal.errors.append(
            ErrorRecord(t=self._clock.time(), phase=phase, type=type(exc).__name__, message=message)
        )
        self._bus.emit(Noted(text=f"error in {phase}: {message}", t=self._clock.time()))
