"""The drill's management report: verdict in words, outage thresholds, objectives, timeline, trends, escaping."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from drilling.record import DrillRecord
from reports.charts import Band, Series
from reports.drill_charts import Span, timeline_chart, trend_chart
from reports.management import (
    MAJOR_S,
    REPORT_NAME,
    REPORTABLE_S,
    classify_outage,
    drill_outage,
    format_duration,
    render_management_report,
    write_management_report,
)
from tests.reports.drill_records import FAULT_AT, history_row, make_drill, make_history
from tests.reports.html_balance import balanced
from tests.reports.report_journals import make_journal


class _Tables(HTMLParser):
    """The text of every cell of every table with an id: {id: [[cell, ...], ...]} (header rows excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.current = dict(attrs).get("id")
            if self.current:
                self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag == "td" and self.current:
            self.cell = []
        elif tag == "br" and self.cell is not None:
            self.cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.current and self.cell is not None:
            self.tables[self.current][-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "table":
            if self.current:
                self.tables[self.current] = [row for row in self.tables[self.current] if row]
            self.current = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def tables(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def outage_pill(html: str) -> tuple[str, str]:
    match = re.search(r'<span class="outage (\w+)" id="outage" data-level="(\w+)">([^<]*)</span>', html)
    assert match, "no outage classification on page one"
    return match.group(2), match.group(3)


def objective(html: str, name: str) -> list[str]:
    rows = [row for row in tables(html)["objectives"] if row[0] == name]
    assert len(rows) == 1, f"objective {name!r}: {rows}"
    return rows[0]


@pytest.mark.parametrize(
    ("seconds", "level", "words"),
    [
        (None, "unknown", "not measured"),
        (45.0, "none", "below the 5-minute reportable threshold"),
        (REPORTABLE_S - 0.5, "none", "below the 5-minute reportable threshold"),
        (REPORTABLE_S, "reportable", "a reportable incident (5 minutes or more)"),
        (6 * 60, "reportable", "a reportable incident (5 minutes or more)"),
        (MAJOR_S - 1, "reportable", "a reportable incident"),
        (MAJOR_S, "major", "a major incident (30 minutes or more)"),
        (31 * 60, "major", "a major incident (30 minutes or more)"),
    ],
)
def test_outage_classification(seconds: float | None, level: str, words: str) -> None:
    outage = classify_outage(seconds)
    assert outage.level == level
    assert words in outage.words
    assert outage.tone == {"unknown": "warn", "none": "good"}.get(level, "bad")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (4.25, "4.2 s"), (45.0, "45 s"), (365.0, "6 min 05 s"), (3725.0, "1 h 02 min")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_rto_of_6_minutes_is_a_reportable_incident(tmp_path: Path) -> None:
    record = make_drill(tmp_path, verdict="failed", rto_s=360.0, rto_target_s=300.0)
    html = render_management_report(record)
    assert outage_pill(html) == ("reportable", "Outage of 6 min 00 s: a reportable incident (5 minutes or more)")
    assert '<div class="badge bad" id="verdict">Failed</div>' in html
    assert "The drill failed: 1 of 3 objectives missed (rto 6 min 00 s against 5 min 00 s)." in html
    assert objective(html, "rto")[1:4] == ["5 min 00 s", "6 min 00 s", "✗ missed"]
    assert objective(html, "no reportable incident")[1:4] == ["outage < 5 min", "6 min 00 s", "✗ missed"]
    assert objective(html, "no major incident")[1:4] == ["outage < 30 min", "6 min 00 s", "✓ met"]


def test_rto_of_31_minutes_is_a_major_incident(tmp_path: Path) -> None:
    record = make_drill(tmp_path, verdict="failed", rto_s=31 * 60.0, rto_target_s=300.0)
    html = render_management_report(record)
    assert outage_pill(html) == ("major", "Outage of 31 min 00 s: a major incident (30 minutes or more)")
    assert objective(html, "no reportable incident")[3] == "✗ missed"
    assert objective(html, "no major incident")[3] == "✗ missed"


def test_a_passed_drill_below_the_thresholds(tmp_path: Path) -> None:
    record = make_drill(tmp_path, rto_s=252.0)
    html = render_management_report(record)
    assert '<div class="badge good" id="verdict">Passed</div>' in html
    assert "The drill passed: all 3 objectives met. No acknowledged order was lost." in html
    assert outage_pill(html) == ("none", "Outage of 4 min 12 s: below the 5-minute reportable threshold")
    results = {row[0]: row[3] for row in tables(html)["objectives"]}
    assert results == {
        "rto": "✓ met",
        "time_to_detect": "✓ met",
        "rpo_orders": "✓ met",
        "no reportable incident": "✓ met",
        "no major incident": "✓ met",
    }


def test_the_outage_is_the_longer_of_rto_and_time_to_recover(tmp_path: Path) -> None:
    record = make_drill(tmp_path, rto_s=200.0, time_to_recover_s=320.0)
    outage = drill_outage(record)
    assert (outage.seconds, outage.level) == (320.0, "reportable")
    assert outage.basis.endswith("(the longer of its RTO and its time to recover): experiment 1")
    record = make_drill(tmp_path, rto_s=None, time_to_recover_s=None)
    assert drill_outage(record).level == "unknown"
    html = render_management_report(record)
    assert outage_pill(html)[0] == "unknown"
    assert objective(html, "no reportable incident")[3] == "? not judged"


def test_business_impact_on_page_one(tmp_path: Path) -> None:
    journal = make_journal("lost_orders")
    record = make_drill(tmp_path, verdict="failed", journal=journal, lost=37)
    points = journal.metrics["*"]
    failed, requests = sum(p.fail for p in points), sum(p.n for p in points)
    peak = max(p.p99 for p in points if p.p99 is not None)
    html = render_management_report(record)
    summary = html[html.index('<section id="summary">') : html.index('<div id="details">')]
    assert f'<div class="value">{failed:,}</div>' in summary
    assert f"{100.0 * failed / requests:.2f} % of {requests:,}" in summary
    assert f'<div class="value">{peak:,.0f} ms</div>' in summary
    assert (
        '<div class="figure bad">\n    <div class="label">Orders lost</div>\n    <div class="value">37</div>' in summary
    )
    assert "37 acknowledged orders lost." in summary
    assert objective(html, "rpo_orders")[1:4] == ["0 orders", "37 orders", "✗ missed"]


def test_runbook_expected_vs_actual(tmp_path: Path) -> None:
    html = render_management_report(make_drill(tmp_path, time_to_detect_s=45.0))
    rows = {row[0].split(" detect")[0].split(" recover")[0]: row for row in tables(html)["runbook"]}
    detect = rows["Confirm the matcher alert fired"]
    assert detect[4:7] == ["1 min 00 s", "45 s 15 s early", "done"]
    fail_over = rows["Fail the matcher over to the standby"]
    assert fail_over[4:8] == ["2 min 00 s", "2 min 30 s 30 s late", "late", "bob"]
    notify = rows["Notify compliance"]
    assert notify[3:7] == ["—", "10 min 00 s", "—", "missed"]


def test_timeline_is_in_order_with_faults_and_detection(tmp_path: Path) -> None:
    record = make_drill(tmp_path)
    html = render_management_report(record)
    rows = tables(html)["events"]
    kinds = [row[1] for row in rows]
    whats = [row[2] for row in rows]
    assert whats[0] == "drill started" and whats[-1] == "drill finished"
    injected = whats.index("#1 process.kill on matcher injected")
    detected = kinds.index("detection")
    assert whats[detected] == "Confirm the matcher alert fired — alice"
    assert injected < detected < kinds.index("recovery")
    assert rows[injected][0] == f"+{round(FAULT_AT - record.started_at)}s"

    def seconds(text: str) -> int:
        match = re.fullmatch(r"\+(?:(\d+)m)?(\d+)s|\+(\d+)m", text)
        assert match, text
        return int(match.group(1) or match.group(3) or 0) * 60 + int(match.group(2) or 0)

    offsets = [seconds(row[0]) for row in rows]
    assert offsets == sorted(offsets)
    assert 'class="chart"' in html[html.index('<section id="timeline">') : html.index("<h3>Runbook</h3>")]


def test_charts_come_from_each_experiments_journal(tmp_path: Path) -> None:
    html = render_management_report(make_drill(tmp_path))
    charts = html[html.index('<section id="charts">') : html.index('<section id="trends">')]
    assert charts.count("<svg") == 3
    for title in ("Latency, all requests", "Throughput", "Error rate"):
        assert f"<title>{title}</title>" in charts
    assert charts.count('class="fault-band"') == 3  # the kill's window shaded in each chart


def test_a_missing_journal_leaves_a_note_instead_of_charts(tmp_path: Path) -> None:
    html = render_management_report(make_drill(tmp_path, with_journal=False))
    charts = html[html.index('<section id="charts">') : html.index('<section id="trends">')]
    assert "<svg" not in charts
    assert "No charts:" in charts and "not a readable journal" in charts


def test_relative_journal_paths_are_found_under_the_output_directory(tmp_path: Path) -> None:
    record = make_drill(tmp_path)
    record.experiments[0].journal = "exp/journal.json"
    path = write_management_report(record, tmp_path, [])
    assert "No charts:" not in path.read_text(encoding="utf-8")


def test_journals_of_a_moved_runs_directory_are_found_beside_the_drills(tmp_path: Path) -> None:
    runs = tmp_path / "moved" / "runs"
    run_dir = runs / "20251125T060000Z-r-test"
    record = make_drill(run_dir)
    (run_dir / "exp" / "journal.json").rename(run_dir / "journal.json")
    record.experiments[0].journal = "runs/20251125T060000Z-r-test/journal.json"  # as written: cwd-relative
    path = write_management_report(record, runs / "drills" / "d-1", [])
    assert "No charts:" not in path.read_text(encoding="utf-8")
    assert "<title>Throughput</title>" in path.read_text(encoding="utf-8")


def test_trends_with_history(tmp_path: Path) -> None:
    record = make_drill(tmp_path, rto_s=252.0)
    history = make_history(record, [("failed", 420.0), ("passed", 280.0)])
    html = render_management_report(record, history)
    trends = html[html.index('<section id="trends">') :]
    assert trends.count("<svg") == 2
    assert "<title>RTO, detection and recovery over past runs</title>" in trends
    assert "<title>Pass rate over past runs</title>" in trends
    assert "Passed 2 of 3 runs." in trends
    dots = re.findall(r'<g class="dot"><title>RTO, [^:]+: ([\d.]+) s</title>', trends)
    assert dots == ["420", "280", "252"]
    rates = re.findall(r'<g class="dot"><title>pass rate, cumulative, [^:]+: ([\d.]+) %</title>', trends)
    assert [float(r) for r in rates] == [0.0, 50.0, pytest.approx(66.7)]
    assert "reportable incident (5 min)" in trends  # the 5-minute line drawn in the RTO trend
    rows = tables(html)["history"]
    assert [row[2] for row in rows] == ["failed", "passed", "passed"]
    assert rows[-1][1].endswith("(this run)")
    assert [row[-1] for row in rows] == ["reportable", "none", "none"]


def test_recoveries_of_seconds_are_not_flattened_by_a_far_threshold_line(tmp_path: Path) -> None:
    record = make_drill(tmp_path, rto_s=2.4, rto_target_s=15.0)
    history = make_history(record, [("passed", 2.9), ("passed", 2.1)])
    trends = render_management_report(record, history)
    trends = trends[trends.index('<section id="trends">') :]
    rto_chart = trends[: trends.index("<title>Pass rate over past runs</title>")]
    assert "reportable incident" not in rto_chart and "major incident" not in rto_chart
    assert re.findall(r'<g class="dot"><title>RTO, [^:]+: ([\d.]+) s</title>', rto_chart) == ["2.9", "2.1", "2.4"]
    ticks = [float(t) for t in re.findall(r'<text[^>]*text-anchor="end"[^>]*>([\d.]+)</text>', rto_chart)]
    assert ticks and max(ticks) < 60  # the scale follows the values and the RTO objective, not 300 s


def test_a_first_run_has_no_trend_yet(tmp_path: Path) -> None:
    record = make_drill(tmp_path)
    html = render_management_report(record, [history_row(record)])
    trends = html[html.index('<section id="trends">') :]
    assert "<svg" not in trends
    assert "Trends need at least two runs of this drill; 1 recorded so far." in trends


def test_hostile_text_is_escaped(tmp_path: Path) -> None:
    hostile = '<script>window.__pwned=1</script>"><img src=x onerror=alert(1)>'
    journal = make_journal("deviated")
    journal.experiment_title = hostile
    journal.faults[0].params = {"signal": hostile}
    record = make_drill(tmp_path, journal=journal)
    record.drill_name = record.scenario = record.summary = hostile
    record.steps[0].title = record.steps[1].detail = hostile
    record.participants[0].name = hostile
    record.experiments[0].title = hostile
    html = render_management_report(record, make_history(record, [("passed", 100.0)]))
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert not balanced(html).problems


def test_self_contained_and_balanced(tmp_path: Path) -> None:
    record = make_drill(tmp_path)
    html = render_management_report(record, make_history(record, [("failed", 420.0)]))
    assert not re.search(r"(?:src|href)\s*=", html)
    assert "url(" not in html and "@import" not in html and "<link" not in html
    assert "http://" not in html and "https://" not in html
    parsed = balanced(html)
    assert not parsed.problems and not parsed.stack
    assert "script" not in parsed.tags


def test_write_management_report(tmp_path: Path) -> None:
    record = make_drill(tmp_path)
    history = make_history(record, [("passed", 200.0)])
    out = tmp_path / "drill-run"
    path = write_management_report(record, out, history)
    assert path == out / REPORT_NAME == out / "drill-report.html"
    assert path.read_text(encoding="utf-8") == render_management_report(record, history, base=out)
    assert [p.name for p in out.iterdir()] == ["drill-report.html"]  # no temp file left behind


def test_an_unfinished_drill_still_renders(tmp_path: Path) -> None:
    record = DrillRecord(
        drill_run_id="d-1", drill_name="empty", drill_file="drills/empty.yaml", drill_sha256="0" * 64,
        drill={}, started_at=1_764_000_000.0,
    )  # fmt: skip
    html = render_management_report(record)
    assert '<div class="badge warn" id="verdict">Incomplete</div>' in html
    assert "no objectives were judged" in html
    assert "The drill ran no experiment." in html and "The drill has no runbook steps." in html
    assert outage_pill(html)[0] == "unknown"


def test_an_hour_long_drill_renders_within_generous_bounds(tmp_path: Path) -> None:
    """The budget (5 s, 2 MB) is measured in bench/report_size.py; this only guards against gross regressions."""
    record = make_drill(tmp_path, journal=make_journal("deviated", seconds=3600))
    started = time.perf_counter()
    html = render_management_report(record, make_history(record, [("passed", 100.0)] * 20))
    assert time.perf_counter() - started < 10.0
    assert len(html.encode()) < 2_000_000


def test_trend_chart_labels_the_newest_run_and_leaves_gaps_for_unmeasured_runs() -> None:
    labels = [f"r{i}" for i in range(25)]
    values: list[tuple[float, float | None]] = [(i, None if i == 3 else 100.0 + i) for i in range(25)]
    svg = trend_chart("RTO", labels, [Series("RTO", values, "#000")], unit="s")
    shown = re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="middle" fill="#5f6b7a">(r\d+)</text>', svg)
    assert shown == ["r0", "r3", "r6", "r9", "r12", "r15", "r18", "r21", "r24"]  # every third, from the newest
    assert svg.count('<g class="dot">') == 24  # no dot for the run without an RTO
    path = re.search(r'<path class="series" d="([^"]+)"', svg)
    assert path and path.group(1).count("M") == 2  # the line breaks at the gap
    assert "no data" in trend_chart("RTO", labels, [Series("RTO", [(0, None)], "#000")], unit="s")


def test_timeline_chart_draws_bars_expected_ticks_and_escapes_labels() -> None:
    spans = [
        Span("<b>step</b>", 10.0, 70.0, "#0a0", "late", expected_end=40.0),
        Span("other", 70.0, 80.0, "#a00"),
    ]
    svg = timeline_chart("Timeline", spans, bands=[Band(5.0, 15.0, "#1 kill")])
    assert svg.count('<g class="span">') == 2
    assert "&lt;b&gt;step&lt;/b&gt;: late" in svg and "<b>" not in svg
    assert svg.count('stroke-dasharray="3 2"') == 2  # the expected tick and the fault outline
    assert "no data" in timeline_chart("Timeline", [])
