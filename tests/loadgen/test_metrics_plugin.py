"""Unit tests of the metrics plugin's aggregation, line format and histogram merging (no Locust)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from loadgen.metrics_plugin import (
    HIST_HIGHEST_US,
    MetricsFile,
    SecondAggregator,
    error_key,
    histogram_floor,
    new_histogram,
)

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def decode(record: dict[str, object]) -> HdrHistogram:
    hist = record["hist"]
    assert isinstance(hist, str)
    return HdrHistogram.decode(hist.encode("ascii"))


def test_counts_per_second_and_name_and_only_closed_seconds_pop() -> None:
    clock = FakeClock(100.2)
    agg = SecondAggregator("h:1", clock)
    agg.on_request("GET", "GET /a", 1.5, 10)
    agg.on_request("GET", "GET /a", 2.5, 10)
    agg.on_request("POST", "POST /b", 3.0, 10, exception=RuntimeError("boom"))
    clock.now = 100.9
    assert agg.pop_closed() == []  # second 100 is not over yet
    clock.now = 101.1
    agg.on_request("GET", "GET /a", 4.0, 10)

    records = {r["name"]: r for r in agg.pop_closed()}

    assert set(records) == {"GET /a", "POST /b"}
    a, b = records["GET /a"], records["POST /b"]
    assert [a[k] for k in ("type", "t", "src", "method", "n", "fail")] == ["second", 100, "h:1", "GET", 2, 0]
    assert decode(a).get_total_count() == 2
    assert (b["n"], b["fail"], b["errors"]) == (1, 1, {"RuntimeError('boom')": 1})
    assert decode(b).get_total_count() == 0  # a failure is not a latency sample
    rest = agg.pop_all()
    assert [(r["t"], r["n"]) for r in rest] == [(101, 1)]
    assert agg.pop_all() == []


def test_line_has_the_contract_fields_in_order() -> None:
    agg = SecondAggregator("h:1", FakeClock(5.0))
    agg.on_request("GET", "GET /a", 1.0, 0)
    (record,) = agg.pop_all()
    assert list(record) == ["type", "t", "src", "name", "method", "n", "fail", "hist", "errors", "users"]
    assert isinstance(record["t"], int)
    json.dumps(record)


def test_response_times_are_microseconds_and_clamped() -> None:
    agg = SecondAggregator("h:1", FakeClock(5.0))
    agg.on_request("GET", "x", 20.0, 0)
    agg.on_request("GET", "x", 120_000.0, 0)  # two minutes: beyond the histogram's range
    hist = decode(agg.pop_all()[0])
    assert hist.get_total_count() == 2
    assert hist.get_min_value() == pytest.approx(20_000, rel=0.01)
    assert hist.get_max_value() == pytest.approx(HIST_HIGHEST_US, rel=0.01)


def test_a_request_without_a_response_time_is_counted_but_not_sampled() -> None:
    agg = SecondAggregator("h:1", FakeClock(5.0))
    agg.on_request("GET", "x", None, 0)
    (record,) = agg.pop_all()
    assert (record["n"], record["fail"], decode(record).get_total_count()) == (1, 0, 0)


def test_errors_keep_five_distinct_strings_with_counts() -> None:
    agg = SecondAggregator("h:1", FakeClock(5.0))
    for i in range(8):
        agg.on_request("GET", "x", 1.0, 0, exception=f"error {i}")
    agg.on_request("GET", "x", 1.0, 0, exception="error 0")
    (record,) = agg.pop_all()
    assert record["fail"] == 9
    assert record["errors"] == {"error 0": 2, "error 1": 1, "error 2": 1, "error 3": 1, "error 4": 1}


def test_error_key_drops_object_addresses() -> None:
    assert error_key(ValueError("<Foo object at 0x7f3a2b>")) == "ValueError('<Foo object>')"
    assert len(error_key("e" * 1000)) == 300


def test_users_is_the_last_count_sampled_within_the_second() -> None:
    clock = FakeClock(10.1)
    agg = SecondAggregator("h:1", clock)
    agg.sample_users(5)
    agg.on_request("GET", "x", 1.0, 0)
    clock.now = 10.8
    agg.sample_users(7)
    clock.now = 11.5
    agg.on_request("GET", "x", 1.0, 0)  # no sample in second 11: the last known count
    assert [(r["t"], r["users"]) for r in agg.pop_all()] == [(10, 7), (11, 7)]


def test_counting_histogram_floors_gives_the_same_histogram_as_recording_each_value() -> None:
    rng = random.Random(7)
    values = [*range(0, 3000), HIST_HIGHEST_US, *(rng.randint(0, HIST_HIGHEST_US) for _ in range(20_000))]
    values += [int(rng.lognormvariate(8, 2)) % HIST_HIGHEST_US for _ in range(20_000)]
    direct, floors = new_histogram(), new_histogram()
    counts: dict[int, int] = {}
    for value in values:
        direct.record_value(value)
        floor = histogram_floor(value)
        counts[floor] = counts.get(floor, 0) + 1
    for floor, count in counts.items():
        floors.record_value(floor, count)
    assert floors.encode() == direct.encode()
    assert (floors.get_min_value(), floors.get_max_value()) == (
        direct.get_min_value(),
        direct.get_max_value(),
    )


def test_merging_decoded_histograms_equals_recording_all_values() -> None:
    first, second, everything = new_histogram(), new_histogram(), new_histogram()
    values_a = [150, 999, 20_123, 20_500, 45_000, 1_200_000]
    values_b = [1, 77, 20_050, 59_999_999, 3_333]
    for value in values_a:
        first.record_value(value)
        everything.record_value(value)
    for value in values_b:
        second.record_value(value)
        everything.record_value(value)

    merged = HdrHistogram.decode(first.encode())
    merged.add(HdrHistogram.decode(second.encode()))

    assert merged.get_total_count() == everything.get_total_count() == len(values_a) + len(values_b)
    assert list(merged.counts) == list(everything.counts)
    for percentile in (1, 25, 50, 75, 90, 99, 100):
        assert merged.get_value_at_percentile(percentile) == everything.get_value_at_percentile(percentile)


def test_metrics_file_appends_one_line_per_record(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"type":"start"}\n')
    out = MetricsFile(str(path))
    out.write({"type": "second", "t": 1, "name": "é"})
    out.write_mark("stop", "h:1")
    out.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["start", "second", "stop"]
    assert json.loads(lines[1])["name"] == "é"


def test_importing_the_plugin_outside_locust_does_not_import_locust() -> None:
    code = "import sys, loadgen.metrics_plugin; print(sorted({'locust', 'gevent'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_trading_env_overrides_pick_symbols_and_accounts() -> None:
    code = (
        "import json, loadgen.trading as t;"
        "print(json.dumps([t.SYMBOLS, t.ACCOUNTS,"
        " [t.limit_price_cents(780, 'buy', 0.3) for _ in range(200)]]))"
    )
    env = {**os.environ, "TRADING_SYMBOLS": "600000:7.80, 000001,999999", "TRADING_ACCOUNTS": "3"}
    argv = [sys.executable, "-c", code]
    out = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True)
    symbols, accounts, prices = json.loads(out.stdout)
    assert symbols == {"600000": 780, "000001": 1130, "999999": 1000}
    assert accounts == ["ACC0001", "ACC0002", "ACC0003"]
    assert all(776 <= p <= 784 for p in prices)
