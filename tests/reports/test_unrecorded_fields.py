"""Lost orders whose fields the user's locustfile did not record: "—" in every report, never blank or 0."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

from drilling.figures import summarize
from drilling.record import DrillExperimentRecord
from engine.journal import IntegrityRecord, Journal, LostOrder, ObjectiveRecord
from reports import render_html, render_markdown
from tests.reports.report_journals import T0, make_journal


def own_system_journal() -> Journal:
    journal = make_journal("deviated")
    journal.lost_orders = [
        LostOrder(order_id="ord-7", acked_at=T0 + 12, fault_index=1, found="missing"),
        LostOrder(order_id="ord-9", account="ACC9", qty=300, acked_at=T0 + 13, fault_index=1, found="missing"),
    ]
    journal.integrity = [
        IntegrityRecord(
            name="acknowledged_found_by_url",
            status="failed",
            checked=40,
            violations=2,
            examples=[o.model_dump(exclude={"fault_index"}) for o in journal.lost_orders],
        )
    ]
    return journal


def lost_rows(html: str) -> list[list[str]]:
    table = html.split("Order id</th>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    return [
        [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)] for r in rows
    ]


def test_the_html_report_shows_a_dash_for_every_unrecorded_field() -> None:
    rows = lost_rows(render_html(own_system_journal()))
    bare, partial = rows
    assert bare[:7] == ["ord-7", "—", "—", "—", "—", "—", "—"]
    assert partial[:7] == ["ord-9", "—", "ACC9", "—", "—", "300", "—"]
    assert all(cell for row in rows for cell in row)  # never blank


def test_the_violation_examples_show_a_dash_not_null() -> None:
    html = render_html(own_system_journal())
    examples = html.split("acknowledged_found_by_url", 1)[1].split("</details>", 1)[0]
    assert "null" not in examples and "<td>—</td>" in examples


def test_the_markdown_summary_lists_lost_orders_with_dashes() -> None:
    markdown = render_markdown(own_system_journal())
    assert "| `ord-7` | — | — | — | — | — | #1 | missing |" in markdown
    assert "| `ord-9` | ACC9 | — | — | 300 | — | #1 | missing |" in markdown
    assert "| 0 |" not in markdown.split("| lost order |", 1)[1]


def test_drill_figures_count_no_loss_on_a_sample(tmp_path: Path) -> None:
    journal = own_system_journal()
    journal.integrity[0] = IntegrityRecord(
        name="acknowledged_found_by_url",
        status="held",
        checked=10,
        why="a sample: looked up 10 of 40 acknowledged ids (max_ids)",
    )
    why = "acknowledged_found_by_url did not cover every acknowledged id (a sample: ...): RPO not measured"
    journal.rpo = []
    journal.objectives = [o for o in journal.objectives if o.name != "rpo_orders"]
    journal.objectives.append(
        ObjectiveRecord(name="rpo_orders", target=0, observed=None, unit="orders", status="not_checked", why=why)
    )
    exp = DrillExperimentRecord(file="e.yaml")
    summarize(exp, journal, tmp_path / "journal.json")
    assert exp.lost_orders is None and exp.lost_orders_why == why
    assert "a sample: looked up 10 of 40" in render_markdown(journal)
    assert "a sample: looked up 10 of 40" in render_html(journal)
