"""The recovery figures (docs/recovery.md) from the second-by-second steady series, and from metrics end to end."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.analysis import analyse
from engine.journal import FaultRecord, Journal, RecoveryRecord, SteadyPoint
from engine.metrics import MetricStore, new_histogram
from engine.model import Experiment
from engine.recovery import measure

T = 1_800_000_000.0
REQUEST = "GET /quote"


def series(
    pattern: str, start: int = 0, window: tuple[float, float] | None = None, tolerated: str = ""
) -> list[SteadyPoint]:
    """'+' = steady state held that second, '-' = it did not; `tolerated` ('+'/'-') for seconds in `window`."""
    points = []
    for i, c in enumerate(pattern):
        t = float(start + i)
        inside = window is not None and t < window[1] and t + 1 > window[0]
        points.append(
            SteadyPoint(
                t=t, ok=c == "+", tolerated=(tolerated[i] == "+" if tolerated else c == "+") if inside else None
            )
        )
    return points


@pytest.mark.parametrize(
    ("pattern", "fault_at", "fault_end", "rto", "deviating"),
    [
        ("++++++++++----++++++++", 10.4, 20, 3.6, 4),  # fault at 10.4, recovered from second 14
        ("++++++++++++++++++++++", 10.0, 15, 0.0, 0),  # no visible impact
        ("++++++++++-+--++++++++", 10.0, 15, 4.0, 3),  # a short good blip is not recovery
        ("++++++++++++-----+++++", 10.0, 15, 7.0, 5),  # impact shows late, while the fault is in place
        ("++++++++++---+-++++++", 10.0, 12, 5.0, 4),  # recovery needs stable_for seconds in a row
    ],
)
def test_rto_from_the_fault_start(pattern: str, fault_at: float, fault_end: float, rto: float, deviating: int) -> None:
    rec = measure(series(pattern), fault_at, fault_end, len(pattern), stable_for=3)
    assert rec.recovered and rec.rto_from == "fault_start"
    assert rec.rto_s == rec.from_start_s == pytest.approx(rto)
    assert rec.deviating_seconds == deviating
    assert rec.recovered_at == pytest.approx(fault_at + rto)


def test_not_recovered_before_the_end() -> None:
    rec = measure(series("++++++++++------------++"), 10.0, 15.0, 24.0, stable_for=3)
    assert not rec.recovered and rec.rto_s is None and rec.recovered_at is None
    assert rec.from_start_s is None and rec.impact_s is None and rec.after_end_s is None
    assert rec.degraded_at == 10.0


def test_a_second_that_straddles_the_injection_is_not_degradation_before_it() -> None:
    # Second 10 (10.0-11.0) holds the injection at 10.4: its failure is reported at 10.4, marked as straddling.
    rec = measure(series("++++++++++----++++++++"), 10.4, 20.0, 22.0, stable_for=3)
    assert rec.degraded_at == pytest.approx(10.4)
    assert rec.degraded_straddles
    assert rec.impact_s == pytest.approx(14.0 - 10.4)
    clean = measure(series("+++++++++++---++++++++"), 10.4, 20.0, 22.0, stable_for=3)
    assert clean.degraded_at == 11.0 and not clean.degraded_straddles


def test_recovery_in_the_window_stands_only_if_every_in_window_tolerance_held_to_its_end() -> None:
    window = (10.0, 25.0)
    # Healthy again at 16-18 while the fault is in place, then beyond tolerance again at 19-21.
    pattern = "++++++++++------+++---++++++++"
    breached = measure(series(pattern, window=window), *window, len(pattern), stable_for=3)
    assert breached.recovered_at == 22.0 and breached.recovered_in_window
    assert breached.from_start_s == 12.0 and breached.impact_s == 12.0
    # The same seconds, but 19-21 within the entries' `during:` tolerance: the recovery at 16 stands.
    tolerated = "++++++++++------++++++++++++++"
    held = measure(series(pattern, window=window, tolerated=tolerated), *window, len(pattern), stable_for=3)
    assert held.recovered_at == 16.0 and held.recovered_in_window
    assert held.rto_s == 6.0


def test_time_to_recover_after_the_fault_ended() -> None:
    pattern = "++++++++++-------------+++++++"  # fault 10-20, broken until second 22
    rec = measure(series(pattern), 10.0, 20.0, len(pattern), stable_for=3)
    assert rec.recovered_at == 23.0 and not rec.recovered_in_window
    assert rec.settled_at == 23.0 and rec.after_end_s == 3.0 and rec.from_start_s == 13.0
    judged = measure(series(pattern), 10.0, 20.0, len(pattern), stable_for=3, rto_from="fault_end")
    assert judged.rto_from == "fault_end" and judged.rto_s == 3.0 and judged.from_start_s == 13.0


def test_recovered_while_in_place_means_zero_after_the_end() -> None:
    pattern = "++++++++++----++++++++++++"  # fault 10-20.5, healthy again from 14
    rec = measure(series(pattern), 10.0, 20.5, len(pattern), stable_for=3, rto_from="fault_end")
    assert rec.recovered_at == 14.0 and rec.settled_at == 20.5 and rec.after_end_s == 0.0 and rec.rto_s == 0.0


def test_a_fault_that_never_ended_has_no_time_after_its_end() -> None:
    rec = measure(series("++++++++++----++++++++"), 10.0, 22.0, 22.0, stable_for=3, ended=False)
    assert rec.from_start_s == 4.0 and rec.settled_at is None and rec.after_end_s is None
    assert "did not end" in rec.detail
    judged = measure(series("++++++++++----++++++++"), 10.0, 22.0, 22.0, 3, rto_from="fault_end", ended=False)
    assert not judged.recovered and judged.rto_s is None


# -- end to end: metrics → steady series → recovery (the nginx case) ----------------------------------------


def experiment(during: str = "", objectives: str = "{rto: 10s}") -> Experiment:
    return Experiment.model_validate(
        yaml.safe_load(
            f"""
version: 1
title: quote latency
load: {{locustfile: x.py, users: 5, spawn_rate: 5, duration: 40s}}
steady_state:
  - {{name: quote p50, metric: latency_p50_ms, request: "{REQUEST}", max: 100{during}}}
  - {{name: errors, metric: error_rate, max: 0.01, during: {{max: 0.5}}}}
method:
  - {{at: 10s, duration: 15s, kind: network.latency, target: web->backend}}
objectives: {objectives}
"""
        )
    )


def store_of(p50_ms: list[float], fails: list[int] | None = None, n: int = 20) -> MetricStore:
    store = MetricStore()
    for i, latency in enumerate(p50_ms):
        fail = fails[i] if fails else 0
        hist = new_histogram()
        for _ in range(n - fail):
            hist.record_value(max(1, int(latency * 1000)))
        store.add(
            {"type": "second", "t": int(T) + i, "name": REQUEST, "n": n, "fail": fail, "hist": hist.encode().decode()}
        )
    return store


def analysed(exp: Experiment, store: MetricStore, injected: float, ended: float, seconds: int) -> Journal:
    fault = FaultRecord(index=1, kind="network.latency", target="web->backend", at_s=10.0, duration_s=15.0)
    fault.injected_at, fault.ended_at, fault.status = injected, ended, "rolled_back"
    journal = Journal(
        run_id="r",
        tool_version="t",
        experiment_title=exp.title,
        experiment_file="e.yaml",
        experiment_sha256="0" * 64,
        experiment=exp.model_dump(mode="json"),
        seed=1,
        started_at=T,
        faults=[fault],
    )
    analyse(journal, exp, store, {}, T, T + seconds)
    return journal


def latency_fault() -> list[float]:
    """p50 ms per second: 300 in the fault window except a dip to 90 at 16-18, healthy from 25."""
    return [20.0] * 11 + [300.0] * 5 + [90.0] * 3 + [300.0] * 6 + [20.0] * 15


def test_an_entry_without_during_keeps_its_thresholds_in_the_window() -> None:
    journal = analysed(experiment(), store_of(latency_fault()), T + 10.5, T + 25.8, 40)
    rec = journal.faults[0].recovery
    assert rec is not None
    # The dip at 16-18 is no recovery: the fault was still in place and p50 went beyond 100 ms again.
    assert rec.recovered_at == T + 25 and rec.from_start_s == pytest.approx(14.5)
    assert rec.after_end_s == 0.0 and rec.degraded_at == T + 11 and rec.impact_s == pytest.approx(14.0)
    assert [p.t - T for p in journal.steady if p.tolerated is False][:1] == [11.0]
    # No window check is written for it (only observed); the error rate with `during:` is judged.
    assert [(c.probe, c.status) for c in journal.checks if c.phase == "during"] == [("errors", "held")]
    (rto,) = [o for o in journal.objectives if o.name == "rto"]
    assert rto.status == "failed" and rto.observed == pytest.approx(14.5) and "fault_start" in rto.detail


def test_with_a_during_tolerance_the_recovery_in_the_window_stands() -> None:
    journal = analysed(experiment(", during: {max: 500}"), store_of(latency_fault()), T + 10.5, T + 25.8, 40)
    rec = journal.faults[0].recovery
    assert rec is not None and rec.recovered_at == T + 16 and rec.recovered_in_window
    assert [c.probe for c in journal.checks if c.phase == "during"] == ["quote p50", "errors"]


def test_objectives_rto_from_fault_end_judges_the_time_after_the_end() -> None:
    exp = experiment(objectives="{rto: 10s, rto_from: fault_end}")
    journal = analysed(exp, store_of(latency_fault()), T + 10.5, T + 25.8, 40)
    (rto,) = [o for o in journal.objectives if o.name == "rto"]
    assert rto.status == "held" and rto.observed == 0.0
    rec = journal.faults[0].recovery
    assert rec is not None and rec.rto_from == "fault_end" and rec.from_start_s == pytest.approx(14.5)


def test_steady_points_mark_the_second_that_straddles_the_injection() -> None:
    fails = [0] * 10 + [10] * 4 + [0] * 26
    journal = analysed(experiment(), store_of([20.0] * 40, fails), T + 10.5, T + 20.2, 40)
    point = next(p for p in journal.steady if p.t == T + 10)
    assert point.straddles == [1] and not point.ok
    rec = journal.faults[0].recovery
    assert rec is not None and rec.degraded_at == T + 10.5 and rec.degraded_straddles


# -- properties over generated series and fault windows ----------------------------------------------------------


@st.composite
def windows_and_series(draw: st.DrawFn) -> tuple[list[SteadyPoint], float, float, int]:
    n = draw(st.integers(min_value=3, max_value=60))
    start = draw(st.floats(min_value=0.0, max_value=n - 2, allow_nan=False))
    end = draw(st.floats(min_value=start + 0.01, max_value=float(n + 3), allow_nan=False))
    ok = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    tolerated = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    points = [
        SteadyPoint(t=float(i), ok=ok[i], tolerated=tolerated[i] if i < end and i + 1 > start else None)
        for i in range(n)
    ]
    return points, start, end, draw(st.integers(min_value=1, max_value=5))


def assert_true_figures(rec: RecoveryRecord, points: list[SteadyPoint], start: float, end: float) -> None:
    if rec.degraded_at is not None:
        assert rec.degraded_at >= start  # no degradation before the injection
    if rec.recovered_at is not None:
        assert rec.recovered_at >= start
        if rec.degraded_at is not None:
            assert rec.recovered_at >= rec.degraded_at and rec.impact_s is not None and rec.impact_s >= 0
        if rec.recovered_at < end and rec.degraded_at is not None:  # declared while the fault was in place
            held = [p for p in points if math.floor(rec.recovered_at) <= p.t < end]
            assert all(p.tolerated is not False for p in held), "recovered in the window past a breached tolerance"
    if rec.settled_at is not None:
        assert rec.settled_at >= end and rec.after_end_s is not None and rec.after_end_s >= 0


@given(windows_and_series())
def test_no_reported_recovery_precedes_the_end_unless_tolerances_held(
    case: tuple[list[SteadyPoint], float, float, int],
) -> None:
    points, start, end, stable_for = case
    for rto_from in ("fault_start", "fault_end"):
        rec = measure(points, start, end, float(len(points)), stable_for, rto_from=rto_from)
        assert_true_figures(rec, points, start, end)
        assert rec.rto_s == (rec.from_start_s if rto_from == "fault_start" else rec.after_end_s)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from([20.0, 90.0, 300.0]), min_size=12, max_size=30),
    st.lists(st.sampled_from([0, 0, 0, 5, 15]), min_size=30, max_size=30),
    st.floats(min_value=1.0, max_value=8.0),
    st.floats(min_value=0.5, max_value=12.0),
    st.booleans(),
)
def test_metric_series_never_yield_figures_before_their_cause(
    p50: list[float], fails: list[int], at: float, lasts: float, with_during: bool
) -> None:
    seconds = len(p50)
    exp = experiment(", during: {max: 200}" if with_during else "")
    journal = analysed(exp, store_of(p50, fails[:seconds]), T + at, T + min(at + lasts, seconds - 0.5), seconds)
    fault = journal.faults[0]
    assert fault.recovery is not None and fault.injected_at is not None and fault.ended_at is not None
    assert_true_figures(fault.recovery, journal.steady, fault.injected_at, fault.ended_at)
    for point in journal.steady:  # straddling marks exactly on the second that holds the injection
        assert point.straddles == ([1] if point.t < fault.injected_at < point.t + 1 else [])


def test_the_worked_timeline_of_docs_recovery_md() -> None:
    """docs/recovery.md, 'A worked timeline': injected at 15.5, ended at 31.8, stable_for 3 s."""
    bad = set(range(17, 22)) | set(range(25, 34))
    window = (15.5, 31.8)
    pattern = "".join("-" if t in bad else "+" for t in range(45))
    rec = measure(series(pattern, window=window), *window, 45.0, stable_for=3)
    assert (rec.degraded_at, rec.recovered_at, rec.settled_at) == (17.0, 34.0, 34.0)
    assert (rec.from_start_s, rec.impact_s, rec.after_end_s, rec.deviating_seconds) == (18.5, 17.0, 2.2, 14)
    assert not rec.recovered_in_window and not rec.degraded_straddles
    judged = measure(series(pattern, window=window), *window, 45.0, stable_for=3, rto_from="fault_end")
    assert judged.rto_s == 2.2 and judged.from_start_s == 18.5
    # The variant with `during: {max: 500}`: seconds 25-31 within the in-window tolerance.
    tolerated = "".join("-" if t in bad and t < 25 else "+" for t in range(45))
    variant = measure(series(pattern, window=window, tolerated=tolerated), *window, 45.0, stable_for=3)
    assert (variant.recovered_at, variant.recovered_in_window, variant.settled_at) == (22.0, True, 34.0)
    assert (variant.from_start_s, variant.impact_s, variant.after_end_s) == (6.5, 5.0, 2.2)
