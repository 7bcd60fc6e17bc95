"""The live judge: load metrics and HTTP samples in, the steady state judged second by second and over the baseline."""

from __future__ import annotations

import math

from engine.context import Clock
from engine.events import EventBus, ProbeObserved
from engine.journal import CheckRecord
from engine.load import LoadDriver
from engine.metrics import MetricStore
from engine.model import Experiment, HttpProbe
from engine.probes import HttpSampler, judge, render_url, second_failures


class LiveJudge:
    """Owns the run's metric store and HTTP samplers; tells the bus each time the steady state changes."""

    def __init__(self, experiment: Experiment, load: LoadDriver, clock: Clock, bus: EventBus) -> None:
        self.experiment = experiment
        self.store = MetricStore()
        self.samplers: dict[str, HttpSampler] = {}
        self._load = load
        self._clock = clock
        self._bus = bus
        self._t0: float | None = None
        self._next: int | None = None  # the next second to judge live
        self._ok: bool | None = None  # the steady state as last told

    def prepare(self, endpoints: dict[str, str]) -> list[str]:
        """Make a sampler for every HTTP probe (started with the load); the problems, for the preflight."""
        problems = []
        for probe in self.experiment.steady_state:
            if isinstance(probe, HttpProbe):
                try:
                    self.samplers[probe.name] = HttpSampler(probe, render_url(probe.http.url, endpoints))
                except KeyError as exc:
                    problems.append(f"probe {probe.name!r}: the stack has no endpoint {exc.args[0]!r}")
        return problems

    def start(self, t0: float) -> None:
        """The load started at `t0`: judge from then on, and start sampling."""
        self._t0 = t0
        for sampler in self.samplers.values():
            sampler.start()

    def stop(self) -> None:
        for sampler in self.samplers.values():
            sampler.stop()

    def ingest(self) -> None:
        """Take in what the load generator streamed, and judge every second completed since the last call."""
        for record in self._load.poll():
            self.store.add(record)
        last = self.store.last_second()
        if last is None or self._t0 is None:
            return
        # Judge live, one second behind the newest, to show deviations as they happen.
        second = self._next if self._next is not None else math.ceil(self._t0)
        while second < last:
            failing = second_failures(list(self.experiment.steady_state), second, self.store, self.samplers)
            if (not failing) != self._ok:
                self._ok = not failing
                self._bus.emit(
                    ProbeObserved(second=float(second), ok=not failing, failing=failing, t=self._clock.time())
                )
            second += 1
        self._next = second

    def judge_baseline(self) -> list[CheckRecord]:
        """The steady state over the baseline (after the warmup, up to the last completed second)."""
        assert self._t0 is not None
        # The Locust side writes a second once it is over: wait (briefly) for the last one before now.
        wanted = math.floor(self._clock.time()) - 1
        deadline = self._clock.monotonic() + 2.0
        while (self.store.last_second() or 0) < wanted and self._clock.monotonic() < deadline:
            self._clock.sleep(0.05)
            self.ingest()
        last = self.store.last_second()
        end = min(self._clock.time(), last + 1.0) if last is not None else self._clock.time()
        window = (self._t0 + self.experiment.load.warmup, end)
        checks = [judge(p, "baseline", window, self.store, self.samplers) for p in self.experiment.steady_state]
        return [c for c in checks if c is not None]
