"""The HTML report: verdict, faults, figures, charts, escaping, self-containment, size and speed."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine.journal import ErrorRecord
from reports.html import environment, render_html, write_html
from tests.reports.report_journals import SCENARIOS, make_journal

HOSTILE = "<script>alert(1)</script>"
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


class _Balance(HTMLParser):
    """Checks that every non-void element is closed in order (SVG self-closing tags included)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def balanced(html: str) -> _Balance:
    parser = _Balance()
    parser.feed(html)
    parser.close()
    return parser


@pytest.mark.parametrize(
    ("scenario", "label", "tone"),
    [
        ("passed", "Passed", "good"),
        ("deviated", "Deviated", "bad"),
        ("rollback_failed", "Rollback failed", "bad"),
        ("error", "Error", "bad"),
        ("interrupted", "Interrupted", "warn"),
        ("baseline_deviated", "Deviated", "bad"),
    ],
)
def test_verdict_badge_and_summary(scenario, label, tone):
    journal = make_journal(scenario)
    html = render_html(journal)
    assert f'<div class="badge {tone}" id="verdict">{label}</div>' in html
    assert journal.summary.replace("<", "&lt;").replace(">", "&gt;") in html


def test_content_of_a_realistic_run():
    journal = make_journal("deviated")
    html = render_html(journal)
    assert journal.experiment_title in html
    assert journal.run_id in html
    assert "#1 process.kill matcher" in html
    assert "matcher-1 (pid 4242)" in html
    assert "5.0 s" in html  # the RTO
    assert "objective 20 s" in html
    assert "✗ deviated" in html and "✓ held" in html
    assert "11.20 %" in html and "≤ 5.00 %" in html  # observed vs threshold of the deviated check
    assert "loadgen/trading.py" in html
    assert "SIGKILL" in html
    for section in ("Key figures", "Objectives", "Hypothesis", "Faults", "Timeline", "Load", "Errors"):
        assert f"<h2>{section}" in html


def test_times_are_relative_with_utc_on_hover():
    html = render_html(make_journal("passed"))
    assert '<time datetime="2025-11-25T05:53:42.010Z" title="2025-11-25T05:53:42.010Z">+22.0s</time>' in html


def test_one_svg_per_chart_and_a_fault_band_in_each():
    html = render_html(make_journal("deviated"))
    # latency of all requests and of the request the hypothesis names, throughput, error rate, steady state
    assert html.count("<svg") == 5
    assert html.count('class="fault-band"') == 5
    assert "#1 process.kill" in html
    assert html.count('class="series"') == 3 + 3 + 1 + 1


def test_chosen_request_names_get_latency_charts():
    journal = make_journal("passed")
    assert render_html(journal, requests=[]).count("<svg") == 4
    assert render_html(journal, requests=["POST /orders", "unknown"]).count("<svg") == 5


def test_is_self_contained():
    html = render_html(make_journal("deviated"))
    lowered = html.lower()
    for needle in (
        'src="http',
        "src='http",
        'href="http',
        "href='http",
        "@import",
        "url(http",
        "url(//",
        "<link",
    ):
        assert needle not in lowered
    assert "http://" not in html and "https://" not in html  # not even an SVG namespace
    assert "<script" not in lowered
    assert re.search(r"<style>.*@media print", html, re.S)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_markup_is_balanced(scenario):
    parser = balanced(render_html(make_journal(scenario, faults=2 if scenario == "interrupted" else 1)))
    assert parser.problems == []
    assert parser.stack == []


def test_user_text_is_escaped():
    journal = make_journal("error")
    journal.experiment_title = HOSTILE
    journal.experiment_description = HOSTILE
    journal.summary = HOSTILE
    fault = journal.faults[0]
    fault.params = {**fault.params, "note": HOSTILE, HOSTILE: 1}
    fault.target = HOSTILE
    fault.kind = f"process.kill{HOSTILE}"
    fault.error = HOSTILE
    journal.checks[0].probe = HOSTILE
    journal.errors.append(ErrorRecord(t=journal.started_at + 3, phase="rollback", type=HOSTILE, message=HOSTILE))
    journal.events[0].message = HOSTILE
    journal.metrics[HOSTILE] = journal.metrics["*"]
    journal.checks[0].request = HOSTILE  # a request name becomes a chart title
    html = render_html(journal)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert balanced(html).problems == []


def test_baseline_deviated_run_shows_faults_not_injected():
    html = render_html(make_journal("baseline_deviated"))
    assert "skipped" in html
    assert "not injected" in html
    assert html.count('class="fault-band"') == 0
    assert "Objectives (rto 20 s) were set but not measured" in html


def test_faults_table_summarises_rollbacks():
    assert "rolled back and verified in 750 ms" in render_html(make_journal("passed"))
    html = render_html(make_journal("rollback_failed"))
    assert "rollback matcher-1 failed; verify matcher-1 failed" in html
    assert "SpawnError: matcher-1 exited with status 1" in html
    assert "FaultStillPresentError: matcher-1 is not running" in html


def test_journal_without_metrics_renders_placeholders():
    journal = make_journal("passed")
    journal.metrics, journal.steady, journal.load = {}, [], None
    html = render_html(journal)
    assert html.count("no data") >= 4
    assert "No load was recorded." in html


def test_long_event_lists_are_cut_in_the_middle():
    journal = make_journal("passed")
    first, last = journal.events[0], journal.events[-1]
    journal.events = [first] + [first.model_copy(update={"message": f"tick {i}"}) for i in range(3000)] + [last]
    html = render_html(journal)
    assert "run finished: passed" in html and "tick 0" in html
    assert "2002 more events" in html


def test_hour_long_run_is_fast_and_small():
    journal = make_journal("deviated", seconds=3600)
    assert len(journal.metrics["*"]) == 3600
    started = time.perf_counter()
    html = render_html(journal)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0
    assert len(html.encode()) < 2_000_000
    assert html.count("<svg") == 5


def test_environment_is_strict_and_autoescaping():
    env = environment()
    assert env.autoescape is True
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    with pytest.raises(Exception, match="undefined"):
        env.from_string("{{ missing }}").render()


def test_write_html(tmp_path: Path):
    journal = make_journal("passed")
    path = write_html(journal, tmp_path / "report.html")
    assert path.read_text(encoding="utf-8") == render_html(journal)


def test_times_measured_by_injectors_show_as_key_figures_and_in_the_fault() -> None:
    journal = make_journal("passed")
    journal.faults[0].measured = {"promoted_after_s": 1.424, "orders_resumed_after_s": 2.2}
    html = render_html(journal)
    assert re.search(r'<div class="label">Promoted after #1[^<]*</div>\s*<div class="value">1.42 s</div>', html)
    assert "<dt>Orders resumed after</dt><dd>2.20 s</dd>" in html
