"""A run's charts from its journal: latency, throughput, error rate and the steady state, faults shaded.

Load metrics come in whole-second buckets [t, t+1). A bucket's value is drawn where the bucket ends
(t + 1): it is what that second measured, known once it is over, so no line moves before the event
that moved it. At an injection the line holds its previous value until the injection's own time, the
bucket that holds the injection is marked as straddling it, and in the steady-state strip a deviated
second that holds an injection is red only from the injection on (docs/recovery.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from engine.journal import CheckRecord, Journal, MetricPoint
from reports.charts import LATENCY_COLORS, Band, Series, Threshold, format_tick, line_chart, state_strip
from reports.formatting import format_offset


def run_span(journal: Journal) -> float:
    """Seconds from the run's start to the last thing the journal knows of: the shared x-axis."""
    ends = [journal.finished_at or journal.started_at, *(e.t for e in journal.events[-1:])]
    ends += [f.ended_at or f.injected_at or 0.0 for f in journal.faults]
    ends += [p.t + 1.0 for points in journal.metrics.values() for p in points[-1:]]
    ends += [p.t + 1.0 for p in journal.steady[-1:]]
    return max(ends) - journal.started_at


def fault_bands(journal: Journal) -> list[Band]:
    """Each injected fault from injection until its rollback was verified (or the journal's end)."""
    t0, span = journal.started_at, run_span(journal)
    starts = [(f, f.injected_at) for f in journal.faults if f.injected_at is not None]
    return [Band(at - t0, (f.ended_at or t0 + span) - t0, f"#{f.index} {f.kind}") for f, at in starts]


def injections(journal: Journal) -> list[float]:
    """Each injection, in seconds since the run's start."""
    return [f.injected_at - journal.started_at for f in journal.faults if f.injected_at is not None]


def straddling_seconds(journal: Journal) -> list[Band]:
    """The whole seconds that hold an injection (its bucket began before the fault), since the run's start."""
    seconds = []
    for f in journal.faults:
        if f.injected_at is None or f.injected_at == math.floor(f.injected_at):
            continue
        start = math.floor(f.injected_at) - journal.started_at
        at = f.injected_at - journal.started_at
        label = (
            f"second {format_offset(start)} straddles the injection of #{f.index} at +{at:.1f}s: "
            "its value mixes time before and after the fault"
        )
        seconds.append(Band(start, start + 1.0, label))
    return seconds


def _thresholds(
    checks: Iterable[CheckRecord], metric: str, request: str | None, scale: float, unit: str, label: str
) -> list[Threshold]:
    seen: dict[tuple[str, float], bool] = {}
    for check in checks:
        if check.kind != "metric" or check.metric != metric or check.request != request:
            continue
        for side, value in (("max", check.max), ("min", check.min)):
            if value is not None:
                key = (side, value * scale)
                seen[key] = seen.get(key, True) and check.phase == "during"
    notes = {True: " (during faults)", False: ""}
    return [
        Threshold(value, f"{label} {side} {format_tick(value)} {unit}{notes[during]}")
        for (side, value), during in seen.items()
    ]


def _rel(points: Sequence[MetricPoint], t0: float) -> list[tuple[float, MetricPoint]]:
    """Each bucket at its end, in seconds since the run's start."""
    return [(p.t + 1.0 - t0, p) for p in sorted(points, key=lambda p: p.t)]


def _time_chart(journal: Journal, title: str, series: list[Series], unit: str, limits: list[Threshold]) -> str:
    """A line chart on the run's shared time axis, with its fault windows shaded."""
    return line_chart(
        title,
        series,
        unit=unit,
        x_max=run_span(journal),
        bands=fault_bands(journal),
        thresholds=limits,
        cuts=injections(journal),
        straddles=straddling_seconds(journal),
    )


def latency_chart(journal: Journal, request: str = "*") -> str:
    """p50/p95/p99 in ms of one request name ('*' = all), with the hypothesis' latency limits."""
    points = _rel(journal.metrics.get(request, []), journal.started_at)
    series = [Series(q, [(x, getattr(p, q)) for x, p in points], c) for q, c in LATENCY_COLORS.items()]
    key = None if request == "*" else request
    limits = [t for q in LATENCY_COLORS for t in _thresholds(journal.checks, f"latency_{q}_ms", key, 1, "ms", q)]
    title = "Latency, all requests" if request == "*" else f"Latency, {request}"
    return _time_chart(journal, title, series, "ms", limits)


def _dense(points: Sequence[tuple[float, MetricPoint]]) -> list[tuple[float, MetricPoint | None]]:
    """Every second from the first to the last point; a missing second completed no request."""
    if not points:
        return []
    by_x = {round(x): p for x, p in points}
    offset = points[0][0] - round(points[0][0])
    return [(float(x) + offset, by_x.get(x)) for x in range(min(by_x), max(by_x) + 1)]


def throughput_chart(journal: Journal) -> str:
    """Completed requests per second (all requests), zero in seconds where none completed."""
    dense = _dense(_rel(journal.metrics.get("*", []), journal.started_at))
    series = [Series("req/s", [(x, float(p.n) if p else 0.0) for x, p in dense], "#1f77b4")]
    limits = _thresholds(journal.checks, "throughput_rps", None, 1.0, "req/s", "throughput")
    return _time_chart(journal, "Throughput", series, "req/s", limits)


def error_rate_chart(journal: Journal) -> str:
    """Failed share of all requests per second, in percent (a gap where nothing completed)."""
    dense = _dense(_rel(journal.metrics.get("*", []), journal.started_at))
    rates = [(x, 100.0 * p.fail / p.n if p and p.n else None) for x, p in dense]
    limits = _thresholds(journal.checks, "error_rate", None, 100.0, "%", "error rate")
    return _time_chart(journal, "Error rate", [Series("errors %", rates, "#c62828")], "%", limits)


def steady_chart(journal: Journal) -> str:
    """The steady-state verdict second by second: green when every probe held, red otherwise."""
    states = [(p.t - journal.started_at, p.ok, ", ".join(p.failing)) for p in journal.steady]
    title = "Steady state, second by second"
    return state_strip(title, states, x_max=run_span(journal), bands=fault_bands(journal), cuts=injections(journal))


def probe_charts(journal: Journal) -> list[str]:
    """One chart per Prometheus probe (and PromQL abort condition): each sample's value where it was taken, a
    gap where the query gave no number (not checked), the probe's bounds as threshold lines."""
    charts = []
    for name, samples in journal.probes.items():
        points = [(p.t - journal.started_at, p.value) for p in sorted(samples, key=lambda p: p.t)]
        unread = sum(p.value is None for p in samples)
        checks = [c for c in journal.checks if c.kind == "prometheus" and c.probe == name]
        seen: dict[tuple[str, float], bool] = {}
        for check in checks:
            for side, value in (("max", check.max), ("min", check.min)):
                if value is not None:
                    seen[(side, value)] = seen.get((side, value), True) and check.phase == "during"
        limits = [
            Threshold(value, f"{side} {format_tick(value)}{' (during faults)' if during else ''}")
            for (side, value), during in seen.items()
        ]
        title = f"Prometheus: {name}" + (f" ({unread} samples not checked: gaps)" if unread else "")
        charts.append(_time_chart(journal, title, [Series(name, points, "#00838f")], "", limits))
    return charts
