"""Every figure and claim of a report is true: not checked is never held, no effect before its cause, words by stack."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path

from drilling.record import DrillExperimentRecord
from engine.integrity import NO_LEDGER
from engine.journal import IntegrityRecord, Journal, LedgerRecord, ObjectiveRecord
from reports import render_html, render_junit, render_markdown, run_charts
from reports.management import render_management_report
from tests.reports.drill_records import make_drill
from tests.reports.report_journals import T0, fault_offset, make_journal

HOSTILE_TITLE = "<img src=x onerror=alert(1)> **bold** [click](javascript:alert(1)) `code` | cell"


def without_ledger() -> Journal:
    """A passed run whose load recorded no acknowledgements: both ledger checks had nothing to reconcile."""
    journal = make_journal("passed")
    journal.ledger = LedgerRecord()
    journal.rpo, journal.lost_orders = [], []
    journal.integrity = [
        IntegrityRecord(name=name, description="", status="not_checked", why=NO_LEDGER)
        for name in ("acknowledged_orders_persisted", "no_duplicate_order_ids")
    ]
    why = f"acknowledged_orders_persisted was not checked: {NO_LEDGER}"
    journal.objectives = [o for o in journal.objectives if o.name != "rpo_orders"]
    journal.objectives.append(
        ObjectiveRecord(
            name="rpo_orders", target=0, observed=None, unit="orders", status="not_checked", why=why, fault_index=1
        )
    )
    journal.summary = "The steady state held before and after the faults. Not checked: acknowledged_orders_persisted."
    return journal


def test_nothing_reconciled_is_not_checked_in_html_junit_and_markdown() -> None:
    journal = without_ledger()
    html = render_html(journal)
    assert "✓ holds" not in html and "all 0 acknowledged" not in html
    assert html.count("⚠\N{VARIATION SELECTOR-15} not checked") == 2
    assert re.search(r'<div class="label">Orders lost</div>\s*<div class="value">not checked</div>', html)
    assert "no acknowledgement ledger was recorded" in html
    assert re.search(r'<td class="result warn">\? not checked<br><span class="muted">acknowledged_orders', html)

    root = ET.fromstring(render_junit(journal))
    skipped = {c.get("name"): c.find("skipped") for c in root.iter("testcase") if c.find("skipped") is not None}
    for name in ("acknowledged_orders_persisted", "no_duplicate_order_ids", "rpo_orders fault #1"):
        element = skipped[name]
        assert element is not None and "not checked:" in element.get("message", "")

    markdown = render_markdown(journal)
    assert "| `acknowledged_orders_persisted` | 0 | 0 | ⚪ not checked: no acknowledgement ledger" in markdown
    assert "| rpo\\_orders" not in markdown and "| rpo_orders (#1) | 0 orders | — | ⚪ not checked:" in markdown


def test_a_deviated_run_is_never_green_in_junit_even_when_its_objectives_were_only_not_checked() -> None:
    journal = without_ledger()
    journal.verdict, journal.summary = "deviated", "The hypothesis deviated: RPO of fault #1 not checked."
    root = ET.fromstring(render_junit(journal))
    assert root.get("failures") == "1"
    (verdict,) = [c for c in root.iter("testcase") if c.get("classname") == "run"]
    assert verdict.find("failure") is not None


def shifted_injection() -> Journal:
    """The kill injected half a second into the whole second whose bucket already shows its errors."""
    journal = make_journal("passed")
    fault = journal.faults[0]
    fault.injected_at = T0 + fault_offset(60) + 0.5
    return journal


def band_x(svg: str) -> float:
    match = re.search(r'<g class="fault-band"><title>[^<]*</title><rect x="([\d.]+)"', svg)
    assert match, "no fault band"
    return float(match.group(1))


def vertices(svg: str) -> list[tuple[float, float]]:
    (data,) = re.findall(r'<path class="series" d="([^"]*)"', svg)
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", data.replace("h0", ""))]
    return list(zip(numbers[::2], numbers[1::2], strict=True))


def test_no_chart_shows_the_error_spike_before_the_injection() -> None:
    svg = run_charts.error_rate_chart(shifted_injection())
    start = band_x(svg)
    points = vertices(svg)
    baseline = max(y for _, y in points)  # the lowest error rate drawn (SVG y grows downwards)
    raised = [x for x, y in points if y < baseline - 20]
    assert raised and min(raised) >= start  # the spike starts at the injection, not at its bucket's start
    before = [y for x, y in points if x < start]
    assert before and min(before) >= baseline - 5  # flat until the fault
    assert '<g class="straddle">' in svg and "straddles the injection of #1" in svg


def test_the_steady_state_strip_is_red_only_from_the_injection_on() -> None:
    svg = run_charts.steady_chart(shifted_injection())
    outline = float(re.findall(r'<g class="fault-band"><title>[^<]*</title><rect x="([\d.]+)"', svg)[0])
    bad = [float(x) for x in re.findall(r'<g class="bad"><title>[^<]*</title><rect x="([\d.]+)"', svg)]
    assert bad and min(bad) >= outline
    assert '<g class="straddle">' in svg and "straddles an injection" in svg


def test_the_fault_section_says_when_a_second_straddled_and_when_recovery_came_in_the_window() -> None:
    html = render_html(make_journal("passed"))
    assert "in the whole second that holds the injection: part of it came before the fault" in html
    assert "while the fault was still in place: every in-window tolerance held until it ended" in html
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    assert "RTO (from the fault's start, objectives.rto_from) 5.0 s" in text
    assert "After the fault ended 0.0 s" in text and "docs/recovery.md" in text


def test_entries_without_during_are_named_as_only_observed_in_the_windows() -> None:
    journal = make_journal("passed")
    journal.experiment["steady_state"] = [
        {"name": "order entry p99", "metric": "latency_p99_ms", "max": 150.0},
        {"name": "error rate", "metric": "error_rate", "max": 0.01, "during": {"max": 0.05}},
    ]
    html = render_html(journal)
    note = re.search(r'<p class="muted" id="observed-only">(.*?)</p>', html, re.S)
    assert note and "order entry p99" in note.group(1) and "error rate" not in note.group(1)


def test_a_stack_without_a_trading_declaration_gets_neutral_words(tmp_path: Path) -> None:
    journal = make_journal("passed")
    journal.stack = {"name": "shop", "trading": False}
    html = render_html(journal)
    assert "Requests lost" in html and "Orders lost" not in html
    assert "11,873 requests and 1,204 cancels acknowledged to the load generator" in html
    record = make_drill(tmp_path, journal=journal, rto_s=2.4)
    record.trading = False
    report = render_management_report(record)
    assert "reportable" not in report and "major incident" not in report and "trading system of" not in report
    assert 'data-level="unclassified">Outage of 2.4 s</span>' in report
    assert "No acknowledged request was lost." in report and "Requests lost" in report
    assert "Outage class" not in report


def test_drill_claims_cover_only_the_experiments_that_checked(tmp_path: Path) -> None:
    record = make_drill(tmp_path, rto_s=2.4)
    unchecked = DrillExperimentRecord(
        file="experiments/redis-kill.yaml",
        run_id="r-2",
        verdict="passed",
        started_at=record.experiments[0].finished_at,
        lost_orders=None,
        lost_orders_why="acknowledged_orders_persisted not checked: no acknowledgement ledger was recorded",
        integrity="not_checked",
    )
    record.experiments.append(unchecked)
    report = render_management_report(record)
    assert "No acknowledged order was lost in experiment 1. Not checked: experiment 2 (" in report
    assert "No acknowledged order was lost." not in report
    figure = re.search(
        r'<div class="figure (\w+)">\s*<div class="label">Orders lost</div>\s*<div class="value">0<', report
    )
    assert figure and figure.group(1) == "warn"
    assert "not checked in every experiment" in report
    rows = re.findall(r"<tr[^>]*>\s*<td class=\"wrap\">2\. .*?</tr>", report, re.S)
    assert rows and ">not checked</td>" in rows[0]


def test_markdown_escapes_user_text() -> None:
    journal = make_journal("deviated")
    journal.experiment_title = HOSTILE_TITLE
    failed = next(i for i, c in enumerate(journal.checks) if c.status == "failed")
    journal.checks[failed] = journal.checks[failed].model_copy(update={"probe": "<b>p99</b> *of* _orders_"})
    journal.summary = "The hypothesis deviated: <script>alert(1)</script> [x](y)"
    journal.faults[0].target = "<i>matcher</i>"
    markdown = render_markdown(journal)
    assert "<img" not in markdown and "<script" not in markdown and "<b>" not in markdown and "<i>" not in markdown
    assert (
        "&lt;img src=x onerror=alert(1)&gt; \\*\\*bold\\*\\* \\[click\\](javascript:alert(1)) \\`code\\` \\| cell"
        in (markdown.splitlines()[0])
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt; \\[x\\](y)" in markdown
    assert "- &lt;b&gt;p99&lt;/b&gt; \\*of\\* \\_orders\\_ (during #1)" in markdown
    assert "| &lt;i&gt;matcher&lt;/i&gt; |" in markdown
