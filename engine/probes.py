"""Steady-state probes: HTTP sampling in the background, and judging probes over windows and seconds.

A window judgement (baseline, a fault window, recovery) merges everything in the window. A second
judgement decides whether the steady state held in that one second; RTO is measured from those.
Inside a fault window a second is also judged against each entry's in-window tolerance (`during:`,
else its own thresholds): recovery is declared while a fault is in place only if those held.
A second with no completed request at all is not healthy: a stalled system completes nothing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from clients import http
from engine.journal import CheckRecord, JudgedPhase
from engine.metrics import MetricStore
from engine.model import AbortCondition, Bounds, Experiment, HttpProbe, MetricProbe, Probe, PrometheusProbe
from engine.prom_probe import PromSampler, abort_query_probe, judge_window, second_failure
from engine.sampling import IntervalSampler

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_-]*)\}")


def render_url(url: str, endpoints: dict[str, str]) -> str:
    """Replace {name} with the stack endpoint of that name; raises KeyError naming the unknown one."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in endpoints:
            raise KeyError(name)
        return endpoints[name].rstrip("/")

    return _PLACEHOLDER.sub(sub, url)


@dataclass(frozen=True)
class HttpSample:
    t: float
    ok: bool
    status: int | None
    latency_ms: float
    error: str | None = None


class HttpSampler(IntervalSampler[HttpSample]):
    """Samples one HTTP probe on its interval in a daemon thread until stopped."""

    def __init__(self, probe: HttpProbe, url: str) -> None:
        super().__init__(probe.name, probe.http.interval, probe.http.timeout)
        self.probe = probe
        self.url = url

    def _take(self) -> HttpSample:
        check = self.probe.http
        started = time.time()
        status: int | None = None
        error: str | None = None
        try:
            status, _ = http.request(check.method, self.url, check.timeout)
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = (time.time() - started) * 1000.0
        return HttpSample(started, status == check.status, status, round(latency, 3), error)


Sampler = HttpSampler | PromSampler


def abort_probe(experiment: Experiment, condition: AbortCondition) -> Probe:
    """What an abort condition watches, second by second: a probe of the steady state, a PromQL query, or a
    load-metric threshold."""
    if condition.probe is not None:
        return next(p for p in experiment.steady_state if p.name == condition.probe)
    if condition.prometheus is not None:
        return abort_query_probe(condition)
    assert condition.metric is not None  # the model requires one of the three
    return MetricProbe(
        name=condition.label,
        metric=condition.metric,
        request=condition.request,
        max=condition.above,
        min=condition.below,
    )


def within(value: float | None, low: float | None, high: float | None) -> bool:
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _bounds(probe: Probe, phase: JudgedPhase) -> tuple[float | None, float | None] | None:
    if phase == "during":
        during: Bounds | None = probe.during
        return None if during is None else (during.min, during.max)
    if isinstance(probe, HttpProbe):
        return None, probe.max_failure_rate
    return probe.min, probe.max


def judge(
    probe: Probe,
    phase: JudgedPhase,
    window: tuple[float, float],
    store: MetricStore,
    samplers: dict[str, Sampler],
    fault_index: int | None = None,
) -> CheckRecord | None:
    """Judge one probe over one window; None when the probe is not judged in that phase."""
    bounds = _bounds(probe, phase)
    if bounds is None:
        return None
    low, high = bounds
    start, end = window
    if isinstance(probe, MetricProbe):
        agg = store.window(start, end, probe.request)
        observed = agg.value(probe.metric)
        detail = f"{agg.n} requests, {agg.fail} failed over {agg.seconds}s"
        if agg.n == 0:
            detail = f"no {probe.request or 'request'} completed in the window"
        return CheckRecord(
            probe=probe.name,
            phase=phase,
            fault_index=fault_index,
            kind="metric",
            metric=probe.metric,
            request=probe.request,
            min=low,
            max=high,
            observed=observed,
            ok=agg.n > 0 and within(observed, low, high),
            window=window,
            samples=agg.n,
            detail=detail,
        )
    sampler = samplers[probe.name]
    if isinstance(sampler, PromSampler):
        return judge_window(sampler, phase, bounds, window, fault_index)
    return _judge_http(sampler, phase, bounds, window, fault_index)


def _judge_http(
    sampler: HttpSampler,
    phase: JudgedPhase,
    bounds: tuple[float | None, float | None],
    window: tuple[float, float],
    fault_index: int | None,
) -> CheckRecord:
    """An HTTP probe over one window, by the share of its failed samples."""
    probe, (low, high) = sampler.probe, bounds
    samples = sampler.samples(*window)
    failed = [s for s in samples if not s.ok]
    rate = len(failed) / len(samples) if samples else None
    detail = f"{len(failed)} of {len(samples)} samples failed"
    if failed:
        last = failed[-1]
        detail += f" (last: {last.error or f'status {last.status}'})"
    # No sample fell into the window (shorter than the probe's interval): nothing was judged, so not "held".
    why = "" if samples else f"no sample in the window (the probe samples every {probe.http.interval:g}s)"
    return CheckRecord(
        probe=probe.name,
        phase=phase,
        fault_index=fault_index,
        kind="http",
        metric="failure_rate",
        min=low,
        max=high,
        observed=rate,
        status="not_checked" if not samples else ("held" if within(rate, low, high) else "failed"),
        why=why,
        window=window,
        samples=len(samples),
        detail=detail if samples else "no samples in the window",
    )


def second_failures(
    probes: list[Probe],
    second: int,
    store: MetricStore,
    samplers: dict[str, Sampler],
    in_window: bool = False,
) -> list[str]:
    """Names of the probes that did not hold in this second: their steady-state thresholds, or with
    `in_window` their in-window tolerance (`during:` where given, else the same thresholds)."""
    if store.total_requests(second) == 0:
        return ["no requests completed"]
    failing = []
    for probe in probes:
        tolerance = probe.during if in_window else None
        if isinstance(probe, MetricProbe):
            agg = store.second(second, probe.request)
            if agg.n == 0:
                continue  # a sparse request name is simply absent from this second
            low, high = (probe.min, probe.max) if tolerance is None else (tolerance.min, tolerance.max)
            if not within(agg.value(probe.metric), low, high):
                failing.append(probe.name)
        elif isinstance(probe, PrometheusProbe):
            bounds = (probe.min, probe.max) if tolerance is None else (tolerance.min, tolerance.max)
            prom = samplers[probe.name]
            assert isinstance(prom, PromSampler)
            if (failure := second_failure(prom, second, bounds)) is not None:
                failing.append(failure)
        else:
            sampler = samplers[probe.name]
            assert isinstance(sampler, HttpSampler)
            samples = sampler.samples(second, second + 1) or sampler.samples(end=second)[-1:]
            if not samples:
                continue
            if tolerance is None:
                held = all(s.ok for s in samples)  # a failed sample is a failed second
            else:
                held = within(sum(not s.ok for s in samples) / len(samples), tolerance.min, tolerance.max)
            if not held:
                failing.append(probe.name)
    return failing
