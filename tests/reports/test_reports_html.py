"""The HTML report: verdict, faults, figures, charts, escaping, self-containment, size and speed."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine.journal import ErrorRecord, IntegrityRecord, Journal, PhaseRecord
from reports.html import MAX_LOST_ORDERS, environment, render_html, write_html
from tests.reports.html_balance import VOID, balanced
from tests.reports.report_journals import ACKNOWLEDGED, CANCELS, INVARIANTS, LOST, SCENARIOS, make_journal

HOSTILE = "<script>alert(1)</script>"


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
    assert '<h2 id="integrity">Integrity</h2>' in html


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


class _Integrity(HTMLParser):
    """The integrity section as data: each invariant's tone, name and text; the lost-orders table's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.invariants: list[dict[str, str]] = []
        self.lost_rows: list[list[str]] = []
        self.depth = 0  # open elements
        self.invariant_depth: int | None = None  # depth of the open li.invariant
        self.in_name = self.in_summary = False
        self.in_lost: int | None = None  # depth of the open lost-orders table
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        if tag not in VOID:
            self.depth += 1
        if tag == "li" and "invariant" in classes:
            tone = next(c for c in classes if c != "invariant")
            self.invariants.append({"tone": tone, "name": "", "text": "", "summary": "", "examples": ""})
            self.invariant_depth = self.depth
        elif self.invariant_depth is not None and tag == "code" and "name" in classes:
            self.in_name = True
        elif self.invariant_depth is not None and tag == "summary":
            self.in_summary = True
        elif self.invariant_depth is not None and tag == "details":
            self.invariants[-1]["examples"] = "collapsed" if "open" not in dict(attrs) else "open"
        elif tag == "table" and "compact" in classes:
            self.in_lost = self.depth
        elif self.in_lost is not None and tag == "tr":
            self.lost_rows.append([])
        elif self.in_lost is not None and tag == "td":
            self.cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            self.lost_rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None
        if tag == "code":
            self.in_name = False
        if tag == "summary":
            self.in_summary = False
        if tag == "li" and self.depth == self.invariant_depth:
            self.invariant_depth = None
        if tag == "table" and self.depth == self.in_lost:
            self.in_lost = None
        self.depth -= 1

    def handle_data(self, data):
        if self.invariant_depth is not None:
            item = self.invariants[-1]
            item["text"] += data
            if self.in_name:
                item["name"] += data
            if self.in_summary:
                item["summary"] += data
        if self.cell is not None:
            self.cell.append(data)


def integrity(html: str) -> _Integrity:
    parser = _Integrity()
    parser.feed(html)
    parser.close()
    for item in parser.invariants:
        item["text"] = " ".join(item["text"].split())
    parser.lost_rows = [row for row in parser.lost_rows if row]  # the header row has th cells only
    return parser


def text_of(html: str) -> str:
    """The document's text with tags dropped and whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_integrity_section_sits_between_the_summary_and_the_key_figures():
    for scenario in SCENARIOS:
        html = render_html(make_journal(scenario))
        summary = html.index('<p class="summary')
        section = html.index('<h2 id="integrity">Integrity</h2>')
        assert summary < section < html.index("<h2>Key figures</h2>"), scenario
        assert html.count('<h2 id="integrity">') == 1


def test_every_invariant_that_holds_is_green_with_what_it_checked():
    parsed = integrity(render_html(make_journal("passed")))
    assert [i["name"] for i in parsed.invariants] == list(INVARIANTS)
    assert {i["tone"] for i in parsed.invariants} == {"good"}
    first = parsed.invariants[0]
    assert first["text"].startswith("✓ holds acknowledged_orders_persisted")
    assert f"checked {ACKNOWLEDGED:,}" in first["text"]
    assert INVARIANTS["acknowledged_orders_persisted"] in first["text"]
    assert all(i["examples"] == "" for i in parsed.invariants)
    assert parsed.lost_rows == []


def test_violated_invariant_is_red_with_count_checked_and_collapsed_examples():
    journal = make_journal("lost_orders")
    parsed = integrity(render_html(journal))
    tones = {i["name"]: i["tone"] for i in parsed.invariants}
    assert tones == {name: "bad" if name == "acknowledged_orders_persisted" else "good" for name in INVARIANTS}
    violated = parsed.invariants[0]
    assert "✗ violated" in violated["text"]
    assert f"{LOST} violations · checked {ACKNOWLEDGED:,}" in violated["text"]
    assert violated["examples"] == "collapsed"
    assert violated["summary"] == f"20 examples of {LOST} violations"
    first = journal.lost_orders[0]
    assert first.order_id in violated["text"] and first.found in violated["text"]
    assert journal.lost_orders[20].order_id not in violated["text"]  # only the journal's 20 examples


def test_invariant_that_could_not_run_is_amber_with_its_error():
    journal = make_journal("passed")
    journal.integrity[3] = journal.integrity[3].model_copy(
        update={
            "ok": False,
            "status": "not_checked",
            "checked": 0,
            "error": "ConnectionError: redis at 127.0.0.1:6390 refused",
        }
    )
    parsed = integrity(render_html(journal))
    broken = parsed.invariants[3]
    assert (broken["name"], broken["tone"]) == ("balances_conserved", "warn")
    assert "could not run" in broken["text"]
    assert "ConnectionError: redis at 127.0.0.1:6390 refused" in broken["text"]
    assert "checked" not in broken["text"]  # nothing was checked
    assert [i["tone"] for i in parsed.invariants].count("good") == 4


def test_examples_of_any_shape_become_a_compact_table():
    journal = make_journal("passed")
    journal.integrity[2] = journal.integrity[2].model_copy(
        update={
            "ok": False,
            "violations": 2,
            "examples": [
                {"fill_id": "f-881", "problem": "in the fills log 2 times"},
                {"order_id": "90412", "qty": 300, "filled_qty": 300, "sum_of_fills": 600, "orders": [1, 2]},
            ],
        }
    )
    html = render_html(journal)
    details = html[html.index("<details>") : html.index("</details>")]
    assert "<summary>2 examples</summary>" in details
    heads = re.findall(r"<th>([^<]*)</th>", details)
    assert heads == ["fill_id", "problem", "order_id", "qty", "filled_qty", "sum_of_fills", "orders"]
    rows = [re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>", details)]
    assert rows == [
        ["f-881", "in the fills log 2 times", "", "", "", "", ""],
        ["", "", "90412", "300", "300", "600", "[1, 2]"],
    ]


def test_ledger_and_recovery_point_met():
    text = text_of(render_html(make_journal("passed")))
    assert (
        f"Ledger {ACKNOWLEDGED:,} orders and {CANCELS:,} cancels acknowledged to the load generator, "
        "recorded in 3 files; 1 torn line skipped" in text
    )
    assert "Recovery point 0 acknowledged orders lost — objective 0: met" in text
    assert "lost, acknowledged between" not in text


def test_recovery_point_missed_names_the_fault_and_when_the_lost_orders_were_acknowledged():
    journal = make_journal("lost_orders")
    html = render_html(journal)
    assert f'<span class="bad-text">{LOST} acknowledged orders lost — objective 0: missed</span>' in html
    first, last = journal.rpo[0].first_acked_at, journal.rpo[0].last_acked_at
    assert first is not None and last is not None
    rel = f"{first - journal.started_at:+.1f}s", f"{last - journal.started_at:+.1f}s"
    assert rel == ("+21.5s", "+22.0s")
    text = text_of(html)
    assert f"#1 process.kill matcher: {LOST} lost, acknowledged between {rel[0]} and {rel[1]}" in text
    assert "outside any fault" not in text  # nothing was lost outside the faults


def test_orders_lost_key_figure_with_its_objective():
    figure = r'<div class="figure {tone}">\s*<div class="label">Orders lost</div>\s*<div class="value">{value}</div>'
    passed = render_html(make_journal("passed"))
    assert re.search(figure.format(tone="good", value="0"), passed)
    assert f"objective 0 · of {ACKNOWLEDGED:,} acknowledged" in passed
    assert re.search(figure.format(tone="bad", value=str(LOST)), render_html(make_journal("lost_orders")))
    assert "Orders lost" not in render_html(make_journal("deviated"))  # RPO not measured


def test_lost_orders_table_lists_each_order_with_relative_times():
    journal = make_journal("lost_orders")
    rows = integrity(render_html(journal)).lost_rows
    assert len(rows) == LOST
    first = journal.lost_orders[0]
    assert rows[0] == [
        first.order_id,
        "—",  # no client order id
        first.account,
        first.symbol,
        first.side,
        f"{first.qty:,}",
        "7.8",
        "+21.5s",
        "#1",
        first.found,
    ]
    assert rows[1][1] == journal.lost_orders[1].client_order_id
    assert rows[2][6] == "48.52"
    assert "more in the journal" not in render_html(journal)


def test_long_lost_order_lists_are_cut_with_a_note():
    journal = make_journal("lost_orders", lost=120)
    html = render_html(journal)
    rows = integrity(html).lost_rows
    assert len(rows) == MAX_LOST_ORDERS + 1
    assert rows[-1] == [f"… {120 - MAX_LOST_ORDERS} more in the journal …"]
    assert rows[-2][0] == journal.lost_orders[MAX_LOST_ORDERS - 1].order_id
    assert "The journal lists" not in html
    journal.rpo[0] = journal.rpo[0].model_copy(update={"lost": 250})  # more lost than the journal lists
    assert "The journal lists 120 of the 250 lost orders." in render_html(journal)


def test_integrity_text_is_escaped():
    journal = make_journal("lost_orders")
    record = journal.integrity[0]
    record.name = record.description = HOSTILE
    record.examples = [{"order_id": HOSTILE, HOSTILE: {"nested": HOSTILE}, "found": None}]
    journal.integrity.append(IntegrityRecord(name="custom", ok=False, error=HOSTILE))
    journal.lost_orders[0] = journal.lost_orders[0].model_copy(
        update={"order_id": HOSTILE, "client_order_id": HOSTILE, "account": HOSTILE, "found": HOSTILE}
    )
    assert journal.ledger is not None
    journal.ledger.files = [HOSTILE]
    html = render_html(journal)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parser = balanced(html)
    assert parser.problems == [] and parser.stack == []
    parsed = integrity(html)
    assert parsed.invariants[0]["name"] == HOSTILE
    assert HOSTILE in parsed.lost_rows[0]
    assert parsed.invariants[-1]["tone"] == "warn"


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s not in ("passed", "lost_orders")])
def test_journals_without_integrity_records_say_so_in_one_muted_line(scenario):
    journal = make_journal(scenario)
    assert not journal.integrity and journal.ledger is None and not journal.rpo and not journal.lost_orders
    html = render_html(journal)
    section = html[html.index('<h2 id="integrity">') : html.index("<h2>Key figures")]
    assert re.fullmatch(
        r'<h2 id="integrity">Integrity</h2>\s*<p class="muted">No integrity checks ran.</p>\s*', section
    )
    assert "Orders lost" not in html


def test_journal_from_before_the_integrity_phase_still_renders():
    raw = make_journal("passed").model_dump(mode="json")
    for key in ("integrity", "ledger", "lost_orders", "rpo"):
        del raw[key]
    raw["objectives"] = [o for o in raw["objectives"] if o["name"] != "rpo_orders"]
    raw["phases"] = [p for p in raw["phases"] if p["name"] != "integrity"]
    raw["experiment"]["objectives"].pop("rpo_orders")
    html = render_html(Journal.model_validate(raw))
    assert "No integrity checks ran." in html
    assert balanced(html).problems == []


def test_integrity_phase_detail_explains_why_nothing_ran():
    journal = make_journal("deviated")
    journal.phases.append(
        PhaseRecord(
            name="integrity",
            started_at=journal.started_at + 60,
            status="skipped",
            detail="no integrity checks are configured",
        )
    )
    assert "No integrity checks ran: no integrity checks are configured" in render_html(journal)


@pytest.mark.parametrize("scenario", ["passed", "lost_orders"])
def test_integrity_journals_survive_a_round_trip_through_json(scenario):
    journal = make_journal(scenario)
    again = Journal.model_validate_json(journal.model_dump_json())
    assert render_html(again) == render_html(journal)


def test_rpo_objective_in_the_objectives_note_is_in_orders():
    journal = make_journal("passed")
    journal.objectives = []
    assert "Objectives (rto 20 s, rpo_orders 0 orders) were set but not measured" in render_html(journal)


def test_rpo_objective_that_could_not_be_measured_is_not_shown_as_zero_lost():
    journal = make_journal("passed")
    journal.rpo = []
    why = "acknowledged_orders_persisted was not checked: could not run: the gateway did not answer"
    journal.objectives[1] = journal.objectives[1].model_copy(
        update={"observed": None, "met": False, "status": "not_checked", "why": why}
    )
    html = render_html(journal)
    assert f'<span class="warn-text">Acknowledged orders lost: not checked — {why}</span>' in html
    assert re.search(
        r'<div class="figure warn">\s*<div class="label">Orders lost</div>\s*<div class="value">not checked</div>', html
    )
    assert "0 acknowledged orders lost" not in html
