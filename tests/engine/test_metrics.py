"""The metric store merges per-second histograms exactly, across request names and sources."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from engine.metrics import ALL, MetricStore, new_histogram


def record(
    t: int, name: str, values_us: list[int], fail: int = 0, src: str = "a:1", users: int = 10
) -> dict[str, object]:
    hist = new_histogram()
    for value in values_us:
        hist.record_value(value)
    return {
        "type": "second",
        "t": t,
        "src": src,
        "name": name,
        "method": "GET",
        "n": len(values_us) + fail,
        "fail": fail,
        "hist": hist.encode().decode(),
        "users": users,
    }


def test_window_percentiles_equal_one_histogram_of_all_values() -> None:
    rng = random.Random(1)
    store = MetricStore()
    everything = HdrHistogram(1, 60_000_000, 2)
    for second in range(100, 160):
        for src in ("a:1", "b:2"):
            values = [int(rng.expovariate(1 / 5000)) + 1 for _ in range(50)]
            for v in values:
                everything.record_value(v)
            store.add(record(second, "POST /orders", values, fail=1, src=src))
    agg = store.window(100, 160, "POST /orders")
    assert agg.n == 60 * 2 * 51 and agg.fail == 120 and agg.seconds == 60
    assert agg.p99 == pytest.approx(everything.get_value_at_percentile(99) / 1000.0)
    assert agg.p50 == pytest.approx(everything.get_value_at_percentile(50) / 1000.0)
    assert agg.rps == pytest.approx(102.0)
    assert agg.error_rate == pytest.approx(120 / agg.n)


def test_all_requests_series_sums_names_and_users_per_source() -> None:
    store = MetricStore()
    store.add({"type": "start", "t": 99.5, "src": "a:1"})
    store.add(record(100, "GET /a", [1000] * 3, src="a:1", users=5))
    store.add(record(100, "GET /b", [3000] * 1, fail=2, src="a:1", users=5))
    store.add(record(100, "GET /a", [2000] * 4, src="b:2", users=7))
    series = store.series()
    assert list(series) == ["GET /a", "GET /b", ALL]
    (total,) = series[ALL]
    assert (total.n, total.fail, total.users) == (10, 2, 12)
    assert series["GET /a"][0].n == 7
    assert total.max == pytest.approx(3.0, rel=0.01)


def test_frozen_cells_still_merge_late_records() -> None:
    store = MetricStore()
    store.add(record(100, "x", [1000]))
    for second in range(101, 130):  # push second 100 out of the hot set
        store.add(record(second, "x", [1000]))
    store.add(record(100, "x", [9000], src="late:1"))
    agg = store.second(100, "x")
    assert agg.n == 2 and agg.max == pytest.approx(9.0, rel=0.01)


def test_empty_windows_and_bad_records() -> None:
    store = MetricStore()
    store.add({"type": "second", "t": "soon", "name": "x", "n": 1})
    assert store.bad_records == 1
    agg = store.window(0, 10)
    assert agg.n == 0 and agg.p99 is None and agg.error_rate is None and agg.value("throughput_rps") == 0.0
