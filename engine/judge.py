"""The live judge: load metrics, HTTP and Prometheus samples in, the steady state judged second by second and over
the baseline."""

from __future__ import annotations

import math

from engine.context import Clock
from engine.events import EventBus, ProbeObserved
from engine.journal import CheckRecord
from engine.load import LoadDriver
from engine.loader import Loc, Locator
from engine.metrics import MetricStore
from engine.model import Experiment, HttpProbe, PrometheusProbe
from engine.probes import HttpSampler, Sampler, judge, render_url, second_failures
from engine.prom_probe import PromSampler, abort_query_probe, resolve_token


def _prom_sampler(
    probe: PrometheusProbe, loc: Loc, endpoints: dict[str, str], locator: Locator | None
) -> tuple[PromSampler | None, str | None]:
    """A sampler for a Prometheus probe, queried once: a bad query, a missing token or an unreachable server is
    a preflight problem (at the query's file:line when the file is known)."""
    where = f"probe {probe.name!r}" if loc[0] == "steady_state" else f"abort condition {probe.name!r}"

    def problem(message: str, key: str) -> str:
        text = f"{where}: {message}"
        return str(locator.problem((*loc, "prometheus", key), text)) if locator is not None else text

    try:
        url = render_url(probe.prometheus.url, endpoints)
    except KeyError as exc:
        return None, problem(f"the stack has no endpoint {exc.args[0]!r}", "url")
    try:
        token = resolve_token(probe)
    except KeyError as exc:
        return None, problem(f"the environment variable {exc.args[0]} (token_env) is not set", "token_env")
    sampler = PromSampler(probe, url, token)
    error = sampler.check()
    if error is not None and error.kind != "result":  # no series yet may be the load's to create: sampled on
        return None, problem(f"query {probe.prometheus.query!r}: {error}", "query" if error.bad_query else "url")
    return sampler, None


class LiveJudge:
    """Owns the run's metric store and HTTP samplers; tells the bus each time the steady state changes."""

    def __init__(self, experiment: Experiment, load: LoadDriver, clock: Clock, bus: EventBus) -> None:
        self.experiment = experiment
        self.store = MetricStore()
        self.samplers: dict[str, Sampler] = {}
        self._load = load
        self._clock = clock
        self._bus = bus
        self._t0: float | None = None
        self._next: int | None = None  # the next second to judge live
        self._failing: list[str] | None = None  # the failing probes as last told

    def prepare(self, endpoints: dict[str, str], locator: Locator | None = None) -> list[str]:
        """Make a sampler for every HTTP and Prometheus probe (started with the load), each Prometheus query tried
        once; the problems, for the preflight."""
        problems = []
        proms: list[tuple[PrometheusProbe, Loc]] = []
        for i, probe in enumerate(self.experiment.steady_state):
            if isinstance(probe, HttpProbe):
                try:
                    self.samplers[probe.name] = HttpSampler(probe, render_url(probe.http.url, endpoints))
                except KeyError as exc:
                    problems.append(f"probe {probe.name!r}: the stack has no endpoint {exc.args[0]!r}")
            elif isinstance(probe, PrometheusProbe):
                proms.append((probe, ("steady_state", i)))
        for i, condition in enumerate(self.experiment.abort_when):
            if condition.prometheus is not None:
                proms.append((abort_query_probe(condition), ("abort_when", i)))
        for prom, loc in proms:
            sampler, problem = _prom_sampler(prom, loc, endpoints, locator)
            if sampler is not None:
                self.samplers[prom.name] = sampler
            if problem is not None:
                problems.append(problem)
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
            if failing != self._failing:  # it stopped holding, holds again, or other probes fail now
                self._failing = failing
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
