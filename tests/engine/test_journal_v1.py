"""Schema-1 journals are still read: upgraded, what they never recorded marked, re-rendered by `chaos.py report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import ExitCode
from engine.journal import load_journal
from reports import render_html, render_junit, render_markdown
from tests.reports.report_journals import Scenario, make_journal
from tests.support.helpers import chaos

OUTCOME_KEYS = ("status", "why")


def schema_1(scenario: Scenario = "passed") -> dict[str, Any]:
    """A journal as schema 1 wrote it: booleans only, one recovery figure, a degradation before the injection."""
    raw = make_journal(scenario).model_dump(mode="json")
    raw["schema_version"] = 1
    raw.pop("upgraded_from")
    raw["stack"].pop("trading")
    for section in ("checks", "objectives", "integrity"):
        for record in raw[section]:
            for key in OUTCOME_KEYS:
                record.pop(key)
    for point in raw["steady"]:
        for key in ("tolerated", "untolerated", "straddles"):
            point.pop(key)
    fault = raw["faults"][0]
    fault["recovery"] = {
        "degraded_at": fault["injected_at"] - 0.6,  # a whole-second bucket that began before the kill
        "recovered_at": fault["injected_at"] + 4.99,
        "rto_s": 4.99,
        "impact_s": 4,  # schema 1: seconds without steady state
        "recovered": True,
        "detail": "steady state held again from +5.0s for 3s or more",
    }
    return raw


def write(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(raw))
    return path


def test_a_schema_1_journal_is_upgraded_with_true_figures(tmp_path: Path) -> None:
    raw = schema_1()
    raw["integrity"][4]["checked"] = 0  # schema 1 called a check that examined nothing "ok"
    journal = load_journal(write(tmp_path, raw))
    assert (journal.schema_version, journal.upgraded_from) == (2, 1)
    rec = journal.faults[0].recovery
    injected = journal.faults[0].injected_at
    assert rec is not None and injected is not None
    assert rec.degraded_at == injected and rec.degraded_straddles  # never "degraded before the injection"
    assert rec.from_start_s == rec.rto_s == 4.99 and rec.rto_from == "fault_start"
    assert rec.deviating_seconds == 4 and rec.impact_s == 4.99
    assert rec.after_end_s is None and "schema 1" in rec.detail
    assert [c.status for c in journal.checks] == ["held" if c["ok"] else "failed" for c in raw["checks"]]
    assert journal.integrity[4].status == "not_checked" and "0 items" in journal.integrity[4].why
    assert journal.integrity[0].status == "held"
    assert journal.stack.get("trading") is None  # the reference stack of schema 1 still reads as trading:
    assert "Orders lost" in render_html(journal)


def test_a_schema_1_check_that_could_not_run_is_not_checked_and_claims_no_loss(tmp_path: Path) -> None:
    raw = schema_1()
    persisted = raw["integrity"][0]
    persisted.update(ok=False, checked=0, error="the gateway did not answer")
    raw["objectives"][1].update(observed=0, met=True)  # what schema 1 wrote beside it
    raw["summary"] = "The steady state held. Integrity held: all 0 acknowledged orders accounted for."
    journal = load_journal(write(tmp_path, raw))
    assert "accounted for" not in journal.summary and "Integrity not checked: acknowledged_orders" in journal.summary
    assert journal.integrity[0].status == "not_checked"
    (rpo,) = [o for o in journal.objectives if o.name == "rpo_orders"]
    assert rpo.status == "not_checked" and rpo.observed is None
    assert journal.rpo == []
    assert "0 acknowledged orders lost" not in render_html(journal)


def test_every_report_renders_from_a_schema_1_journal(tmp_path: Path) -> None:
    scenarios: tuple[Scenario, ...] = ("passed", "deviated", "lost_orders", "interrupted")
    for scenario in scenarios:
        journal = load_journal(write(tmp_path, schema_1(scenario)))
        html = render_html(journal)
        assert 'id="upgraded"' in html and "schema 1" in html
        assert "<testsuites" in render_junit(journal)
        assert "schema-1 journal" in render_markdown(journal)


def test_chaos_report_re_renders_a_schema_1_journal(tmp_path: Path) -> None:
    path = write(tmp_path, schema_1("deviated"))
    result = chaos("report", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == ExitCode.PASSED, result.stderr
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Degraded at" in html and "schema 1" in html


def test_a_journal_of_an_unknown_schema_is_refused_with_the_versions_read(tmp_path: Path) -> None:
    result = chaos("report", str(write(tmp_path, {"schema_version": 3})))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert "schema_version 3, this tool reads 2 (and upgrades 1)" in result.stderr
