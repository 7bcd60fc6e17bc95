"""SVG charts: empty, single-point, gappy, flat and hour-long series; escaping; charts of a journal."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from reports import charts, run_charts
from reports.charts import Band, Series, Threshold, line_chart, state_strip
from tests.reports.report_journals import fault_offset, make_journal

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def paths(svg: str) -> list[str]:
    return re.findall(r'<path class="series" d="([^"]*)"', svg)


def test_empty_data_renders_a_placeholder():
    for series in ([], [Series("p99", [], "#000")], [Series("p99", [(0.0, None), (1.0, None)], "#000")]):
        svg = line_chart("Latency", series, unit="ms", standalone=True)
        assert "no data" in svg
        assert parse(svg).tag == f"{SVG}svg"
    assert "no data" in state_strip("Steady", [])


def test_single_point_is_drawn_as_a_dot():
    svg = line_chart("One", [Series("p99", [(5.0, 42.0)], "#000")], unit="ms", x_max=10)
    (data,) = paths(svg)
    assert data.startswith("M") and data.endswith("h0")
    assert 'stroke-linecap="round"' in svg


def test_none_values_and_missing_seconds_leave_gaps():
    points = [(0.0, 1.0), (1.0, 2.0), (2.0, None), (3.0, 3.0), (4.0, 4.0), (9.0, 5.0), (10.0, 6.0)]
    (data,) = paths(line_chart("Gaps", [Series("s", points, "#000")], unit="ms"))
    assert data.count("M") == 3  # before the None, after it, and after the 5-second hole
    assert "h0" not in data


def test_isolated_point_between_gaps_is_a_dot():
    points = [(0.0, 1.0), (1.0, None), (2.0, 2.0), (3.0, None), (4.0, 3.0), (5.0, 3.0)]
    (data,) = paths(line_chart("Dots", [Series("s", points, "#000")], unit="ms"))
    assert data.count("M") == 3
    assert data.count("h0") == 2


def test_all_zero_series_has_a_sane_axis():
    svg = line_chart("Errors", [Series("errors %", [(float(i), 0.0) for i in range(60)], "#c00")], unit="%")
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    assert ">0</text>" in svg and ">1</text>" in svg
    assert len(paths(svg)) == 1


def test_thousands_of_points_stay_compact():
    series = [
        Series(name, [(float(i), (i * k) % 97 + 0.123456) for i in range(3600)], color)
        for k, (name, color) in enumerate(charts.LATENCY_COLORS.items(), start=1)
    ]
    svg = line_chart("Hour", series, unit="ms", standalone=True)
    assert len(paths(svg)) == 3
    numbers = re.findall(r"-?\d+\.\d+", " ".join(paths(svg)))
    assert numbers and all(len(n.split(".")[1]) == 1 for n in numbers)
    assert len(svg) < 3 * 3600 * 16
    parse(svg)


def test_bands_thresholds_and_legend():
    svg = line_chart(
        "Latency",
        [Series("p99", [(0.0, 10.0), (60.0, 20.0)], "#000")],
        unit="ms",
        bands=[Band(20.0, 30.0, "#1 process.kill")],
        thresholds=[Threshold(150.0, "p99 max 150 ms")],
        standalone=True,
    )
    root = parse(svg)
    (band,) = [g for g in root.iter(f"{SVG}g") if g.get("class") == "fault-band"]
    assert band.findtext(f"{SVG}title") == "#1 process.kill"
    assert "p99 max 150 ms" in svg
    assert ">p99</text>" in svg
    assert ">150</text>" in svg  # the y axis reaches the threshold, not just the data


def test_text_is_escaped():
    hostile = '<script>alert("x")</script> & co'
    svg = line_chart(
        hostile,
        [Series(hostile, [(0.0, 1.0), (1.0, 2.0)], "#000")],
        unit=hostile,
        bands=[Band(0.0, 1.0, hostile)],
        thresholds=[Threshold(1.5, hostile)],
        standalone=True,
    )
    assert "<script" not in svg
    root = parse(svg)
    assert root.findtext(f"{SVG}title") == hostile
    strip = state_strip(hostile, [(0.0, False, hostile)], bands=[Band(0.0, 1.0, hostile)], standalone=True)
    assert "<script" not in strip
    parse(strip)


def test_inline_charts_carry_no_namespace_url():
    assert "http" not in line_chart("x", [Series("s", [(0.0, 1.0)], "#000")], unit="ms")


def test_state_strip_merges_equal_seconds():
    states = [(float(i), not 20 <= i < 24, "error rate" if 20 <= i < 24 else "") for i in range(60)]
    svg = state_strip("Steady", states)
    assert svg.count('class="ok"') == 2
    assert svg.count('class="bad"') == 1
    assert "deviated 20s to 24s: error rate" in svg


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 940, [0, 200, 400, 600, 800, 1000]),
        (0, 0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0, 7, [0, 2, 4, 6, 8]),
        (0, 100, [0, 20, 40, 60, 80, 100]),
    ],
)
def test_nice_ticks(lo, hi, expected):
    assert charts.nice_ticks(lo, hi) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(0, "0s"), (45, "45s"), (90, "1m30s"), (600, "10m"), (3600, "1h"), (5400, "1h30m"), (7200, "2h")],
)
def test_format_offset(seconds, label):
    assert charts.format_offset(seconds) == label


@pytest.mark.parametrize(("span", "step"), [(60, 10), (62.3, 10), (3600, 600), (600, 120), (5, 1)])
def test_time_ticks(span, step):
    ticks = charts.time_ticks(span)
    assert ticks[1] - ticks[0] == step
    assert ticks[-1] <= span


def test_fault_bands_of_a_journal():
    journal = make_journal("passed")
    (band,) = run_charts.fault_bands(journal)
    assert band.label == "#1 process.kill"
    assert band.start == pytest.approx(fault_offset(60) + 0.01)
    assert band.end == pytest.approx(fault_offset(60) + 10.8)
    assert run_charts.fault_bands(make_journal("baseline_deviated")) == []


def test_journal_charts_share_the_run_axis():
    journal = make_journal("passed")
    assert journal.finished_at is not None
    assert run_charts.run_span(journal) == pytest.approx(journal.finished_at - journal.started_at)
    for svg in (
        run_charts.latency_chart(journal),
        run_charts.latency_chart(journal, "POST /orders"),
        run_charts.throughput_chart(journal),
        run_charts.error_rate_chart(journal),
        run_charts.steady_chart(journal),
    ):
        assert '<g class="fault-band">' in svg
        assert ">1m</text>" in svg


def test_journal_chart_thresholds_come_from_the_hypothesis():
    journal = make_journal("passed")
    assert "p99 max 150 ms" in run_charts.latency_chart(journal, "POST /orders")
    assert "p99 max 1000 ms (during faults)" in run_charts.latency_chart(journal, "POST /orders")
    assert "p99 max" not in run_charts.latency_chart(journal)  # that probe names a request
    error_chart = run_charts.error_rate_chart(journal)
    assert "error rate max 1 %" in error_chart and "error rate max 5 % (during faults)" in error_chart


def test_error_spike_and_latency_gap_of_the_killed_leader():
    journal = make_journal("passed")
    (errors,) = paths(run_charts.error_rate_chart(journal))
    (p50, _, p99) = paths(run_charts.latency_chart(journal))
    assert errors.count("M") == 1  # failures are data: the error line is continuous
    assert p99.count("M") == 2  # the second where every request failed has no latency
    throughput = run_charts.throughput_chart(journal)
    assert len(paths(throughput)) == 1
    assert p50


def test_journal_without_metrics_shows_placeholders():
    journal = make_journal("passed")
    journal.metrics, journal.steady = {}, []
    for svg in (
        run_charts.latency_chart(journal),
        run_charts.throughput_chart(journal),
        run_charts.error_rate_chart(journal),
        run_charts.steady_chart(journal),
    ):
        assert "no data" in svg


def test_missing_second_counts_as_zero_throughput_and_leaves_an_error_rate_gap():
    journal = make_journal("passed")
    del journal.metrics["*"][10]
    assert paths(run_charts.throughput_chart(journal))[0].count("M") == 1
    assert paths(run_charts.error_rate_chart(journal))[0].count("M") == 2
