"""The Markdown summary: the verdict, faults, objectives and integrity as tables a PR comment can show."""

from __future__ import annotations

from engine.journal import GuardRecord
from reports.markdown import FAULT_HEADER, render_markdown
from tests.reports.report_journals import add_integrity, make_journal


def table_rows(markdown: str, header: str) -> list[list[str]]:
    lines = markdown.splitlines()
    start = lines.index(header)
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_a_deviated_run_says_so_and_lists_its_fault_and_failed_checks() -> None:
    journal = make_journal("deviated")
    text = render_markdown(journal)
    assert text.splitlines()[0].endswith("— **DEVIATED**")
    (fault,) = table_rows(text, FAULT_HEADER)
    assert fault[:4] == ["#1", "`process.kill`", "matcher", "rolled_back"]
    assert fault[4:7] == ["5.0 s (from the fault's start)", "5.0 s", "0.0 s"]
    failed = [c for c in journal.checks if not c.ok]
    assert failed and all(f"- {c.probe} ({c.phase}" in text for c in failed)
    assert f"exit code {journal.exit_code}" in text


def test_lost_orders_fail_the_integrity_table() -> None:
    journal = add_integrity(make_journal("passed"), lost=3)
    rows = table_rows(render_markdown(journal), "| integrity check | checked | violations | holds |")
    by_name = {row[0]: row for row in rows}
    persisted = by_name["`acknowledged_orders_persisted`"]
    assert persisted[2] == "3" and persisted[3] == "❌ violated"


def test_user_text_cannot_break_the_tables_and_overrides_are_shown() -> None:
    journal = make_journal("passed")
    journal.faults[0].target = "a|b\nc"
    journal.guards.append(
        GuardRecord(name="production", ok=True, overridden=True, by="sre@host", reason="DR | drill\nCHG-1")
    )
    text = render_markdown(journal)
    (fault,) = table_rows(text, FAULT_HEADER)
    assert len(fault) == 8 and fault[2] == "a\\|b c"
    assert "Safety guard **production** overridden by sre@host: DR \\| drill CHG-1" in text
