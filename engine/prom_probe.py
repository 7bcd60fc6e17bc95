"""Prometheus steady-state probes: a PromQL instant query sampled in the background, judged like a metric.

Each sample is one number or, when the query gave none (no series, several, an error, a timeout), a
reason: that sample is "not checked". A window holds when every sample in it was read and in bounds; a
second with an unread sample is not healthy (unknown is never passed). The bearer token is read from
the environment variable the file names, at preflight, and lives only in the sampler's memory.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from clients.prometheus import PromQueryError, instant_query
from engine.journal import CheckRecord, JudgedPhase, ProbePoint
from engine.model import AbortCondition, PrometheusProbe
from engine.sampling import IntervalSampler

NOT_CHECKED = " (not checked)"  # appended to a probe's name in a second's failing list when it could not be read


@dataclass(frozen=True)
class PromSample:
    t: float
    value: float | None  # None: not checked, see `error`
    error: str | None = None
    latency_ms: float = 0.0


def resolve_token(probe: PrometheusProbe) -> str | None:
    """The bearer token from the environment; KeyError naming the variable when it is not set."""
    name = probe.prometheus.token_env
    if name is None:
        return None
    token = os.environ.get(name)
    if not token:
        raise KeyError(name)
    return token


def abort_query_probe(condition: AbortCondition) -> PrometheusProbe:
    """A `{prometheus: ..., above|below}` abort condition as the probe its seconds are judged with."""
    assert condition.prometheus is not None
    return PrometheusProbe(
        name=condition.label, prometheus=condition.prometheus, max=condition.above, min=condition.below
    )


class PromSampler(IntervalSampler[PromSample]):
    """Samples one Prometheus probe on its interval in a daemon thread until stopped."""

    def __init__(self, probe: PrometheusProbe, url: str, token: str | None) -> None:
        super().__init__(probe.name, probe.prometheus.interval, probe.prometheus.timeout)
        self.probe = probe
        self.url = url
        self._token = token

    def __repr__(self) -> str:  # never the token
        return f"PromSampler({self.probe.name!r}, {self.url!r})"

    def check(self) -> PromQueryError | None:
        """Query once for the preflight (not recorded): the error, or None when a number came back."""
        try:
            instant_query(self.url, self.probe.prometheus.query, self.probe.prometheus.timeout, self._token)
        except PromQueryError as exc:
            return exc
        return None

    def _take(self) -> PromSample:
        spec = self.probe.prometheus
        started = time.time()
        value: float | None = None
        error: str | None = None
        try:
            value = instant_query(self.url, spec.query, spec.timeout, self._token)
        except PromQueryError as exc:
            error = str(exc)
        return PromSample(started, value, error, round((time.time() - started) * 1000.0, 3))

    def series(self, start: float, end: float) -> list[ProbePoint]:
        """The samples of [start, end) for the journal."""
        return [ProbePoint(t=s.t, value=s.value, error=s.error) for s in self.samples(start, end)]


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _worst(values: list[float], low: float | None, high: float | None) -> float:
    """The value furthest outside the bounds, or (all inside) the one closest to leaving them."""
    if high is not None and (low is None or max(values) > high):
        return max(values)
    return min(values)


def judge_window(
    sampler: PromSampler,
    phase: JudgedPhase,
    bounds: tuple[float | None, float | None],
    window: tuple[float, float],
    fault_index: int | None,
) -> CheckRecord:
    """One Prometheus probe over one window: failed when a value was out of bounds, not checked when a sample
    could not be read (or none fell in the window), else held."""
    probe, (low, high) = sampler.probe, bounds
    samples = sampler.samples(*window)
    values = [s.value for s in samples if s.value is not None]
    unread = [s for s in samples if s.value is None]
    outside = [v for v in values if not _within(v, low, high)]
    detail = f"{len(samples)} samples, {len(outside)} out of bounds, {len(unread)} not checked"
    if unread:
        detail += f" (last: {unread[-1].error})"
    why = ""
    if not samples:
        why = f"no sample in the window (the probe samples every {probe.prometheus.interval:g}s)"
    elif unread and not outside:
        why = f"{len(unread)} of {len(samples)} samples could not be read (last: {unread[-1].error})"
    return CheckRecord(
        probe=probe.name,
        phase=phase,
        fault_index=fault_index,
        kind="prometheus",
        metric=probe.prometheus.query,
        min=low,
        max=high,
        observed=_worst(values, low, high) if values else None,
        status="failed" if outside else ("not_checked" if why else "held"),
        why=why,
        window=window,
        samples=len(samples),
        detail=detail,
    )


def second_failure(sampler: PromSampler, second: int, bounds: tuple[float | None, float | None]) -> str | None:
    """How the probe failed this second: its name, its name marked not checked, or None when it held (or has no
    sample yet). A second without its own sample is judged on the last one before it."""
    samples = sampler.samples(second, second + 1) or sampler.samples(end=second)[-1:]
    if not samples:
        return None
    if any(s.value is None for s in samples):
        return sampler.probe.name + NOT_CHECKED
    low, high = bounds
    if all(s.value is not None and _within(s.value, low, high) for s in samples):
        return None
    return sampler.probe.name
