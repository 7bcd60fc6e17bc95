"""What ends a run early, checked at every tick: the red button, the abort conditions, a journal that cannot be
written, and a trading session opening. Each raises Aborted, and the runner rolls every fault back."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

from engine.context import Clock
from engine.errors import Aborted
from engine.guards import market_open
from engine.journal import ErrorRecord, GuardRecord
from engine.judge import LiveJudge
from engine.model import Experiment
from engine.probes import abort_probe as abort_probe  # re-exported: what each condition watches
from engine.probes import second_failures
from engine.prom_probe import NOT_CHECKED
from engine.recorder import RunRecorder
from engine.stack import LiveStack


class AbortWatch:
    """Watches one run; `calendar_overridden` when the operator overrode the market-hours guard for it."""

    def __init__(
        self,
        experiment: Experiment,
        stack: LiveStack,
        judge: LiveJudge,
        recorder: RunRecorder,
        clock: Clock,
        abort_file: Path | None = None,
        calendar_overridden: bool = False,
    ) -> None:
        self._conditions = experiment.abort_when
        self._probes = [abort_probe(experiment, c) for c in experiment.abort_when]
        self._streaks = [0] * len(self._probes)
        self._checked: int | None = None  # the last second judged against the conditions
        self._stack = stack
        self._judge = judge
        self._recorder = recorder
        self._clock = clock
        self._abort_file = abort_file
        self._calendar_overridden = calendar_overridden

    def tick(self, t0: float | None) -> None:
        """Everything, in order: the red button and the conditions, the record, the calendar."""
        self.check_conditions(t0)
        self.check_record()
        self.check_calendar()

    def check_conditions(self, t0: float | None) -> None:
        """Raise Aborted when an abort condition has held for its whole `for`, or the red button was pressed."""
        flag = self._abort_file
        if flag is not None and flag.exists() and flag.stat().st_mtime >= self._recorder.journal.started_at:
            raise Aborted(f"{flag.name} was created (chaos.py abort)")
        store, samplers = self._judge.store, self._judge.samplers
        last = store.last_second()
        if last is None or t0 is None:
            return
        first = self._checked + 1 if self._checked is not None else math.floor(t0)
        for second in range(first, last + 1):
            for i, (probe, condition) in enumerate(zip(self._probes, self._conditions, strict=True)):
                # A Prometheus that could not be read says nothing: that second is no breach (it ends a streak).
                failures = second_failures([probe], second, store, samplers)
                breached = any(not f.endswith(NOT_CHECKED) for f in failures)
                self._streaks[i] = self._streaks[i] + 1 if breached else 0
                if self._streaks[i] >= math.ceil(condition.for_s):
                    raise Aborted(f"abort condition '{condition.label}' held for {self._streaks[i]}s")
        self._checked = last

    def check_record(self) -> None:
        """Drilling on without a record is drilling blind: a journal that cannot be written aborts the run."""
        writer = self._recorder.writer
        writer.watch_space(self._clock.monotonic())
        if writer.failure is not None:
            self._recorder.journal.errors.append(
                ErrorRecord(
                    t=self._clock.time(),
                    phase=self._recorder.current_phase(),
                    type="JournalWriteError",
                    message=writer.failure,
                )
            )
            raise Aborted(f"the journal could not be written ({writer.failure})")

    def check_calendar(self, before: str = "") -> None:
        """A trading session opening during the run ends it: no fault may start, or stay, inside one.

        Judged on the run's clock before every injection and every tick, unless the operator overrode the
        calendar for this run (journaled at the start).
        """
        hours = self._stack.description.market_hours
        if hours is None or self._calendar_overridden:
            return
        now = datetime.datetime.fromtimestamp(self._clock.time(), datetime.UTC)
        why = market_open(hours, now)
        guards = self._recorder.journal.guards
        if before and why is None:
            guards.append(
                GuardRecord(
                    name="market_hours", ok=True, detail=f"{before}: outside trading hours at {now:%H:%M:%S} UTC"
                )
            )
        if why is not None:
            where = before or "during the run"
            guards.append(GuardRecord(name="market_hours", ok=False, detail=f"{where}: {why}"))
            raise Aborted(f"{why}; a trading session opened during the run, so every fault is rolled back")
