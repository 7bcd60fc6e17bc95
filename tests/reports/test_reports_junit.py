"""JUnit XML from journals: counts per outcome, classnames, messages, escaping, files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import reports
from engine.journal import ErrorRecord, IntegrityRecord, Journal
from reports.junit import render_junit, write_junit
from tests.reports.report_journals import ACKNOWLEDGED, INVARIANTS, LOST, SCENARIOS, T0, make_journal


def parse(journal: Journal) -> ET.Element:
    return ET.fromstring(render_junit(journal))


def cases(root: ET.Element, classname: str | None = None) -> list[ET.Element]:
    return [c for c in root.iter("testcase") if classname is None or c.get("classname") == classname]


@pytest.mark.parametrize(
    ("scenario", "faults", "tests", "failures", "errors", "skipped"),
    [
        # 9 checks (3 probes x baseline, during #1, recovery) + inject + rollback + rto objective (12)
        ("passed", 1, 18, 0, 0, 0),  # ... + 5 invariants and the rpo_orders objective, all green
        ("deviated", 1, 12, 1, 0, 0),
        ("rollback_failed", 1, 12, 1, 0, 0),
        # 3 baseline checks (one deviated), the injection and its rollback skipped
        ("baseline_deviated", 1, 5, 1, 0, 2),
        ("baseline_deviated", 2, 7, 1, 0, 4),
        # no recovery checks; fault #2 never reached; the interruption itself is an error
        ("interrupted", 2, 12, 0, 1, 2),
        ("error", 1, 13, 0, 1, 0),
        # acknowledged_orders_persisted violated and the rpo_orders objective missed
        ("lost_orders", 1, 18, 2, 0, 0),
    ],
)
def test_counts_match_outcome(scenario, faults, tests, failures, errors, skipped):
    root = parse(make_journal(scenario, faults=faults))
    suite = root.find("testsuite")
    assert suite is not None
    found = {
        "tests": len(cases(root)),
        "failures": len(list(root.iter("failure"))),
        "errors": len(list(root.iter("error"))),
        "skipped": len(list(root.iter("skipped"))),
    }
    assert found == {"tests": tests, "failures": failures, "errors": errors, "skipped": skipped}
    for element in (root, suite):
        assert {k: int(element.get(k, "-1")) for k in found} == found


def test_one_suite_named_after_the_experiment_with_run_time_and_utc_timestamp():
    journal = make_journal("passed")
    root = parse(journal)
    suites = root.findall("testsuite")
    assert len(suites) == 1
    assert suites[0].get("name") == journal.experiment_title
    assert journal.finished_at is not None
    assert float(suites[0].get("time", "0")) == pytest.approx(journal.finished_at - journal.started_at, abs=1e-3)
    assert suites[0].get("timestamp") == "2025-11-25T05:53:20"
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["run_id"] == journal.run_id
    assert props["verdict"] == "passed"


def test_classnames_and_names():
    root = parse(make_journal("passed"))
    assert [c.get("name") for c in cases(root, "steady_state.baseline")] == [
        "order entry p99",
        "error rate",
        "gateway health",
    ]
    assert [c.get("name") for c in cases(root, "steady_state.during")] == [
        "order entry p99 fault #1",
        "error rate fault #1",
        "gateway health fault #1",
    ]
    assert len(cases(root, "steady_state.recovery")) == 3
    assert [c.get("name") for c in cases(root, "faults")] == ["#1 process.kill matcher"]
    assert [c.get("name") for c in cases(root, "rollback")] == ["#1 process.kill matcher"]
    assert [c.get("name") for c in cases(root, "integrity")] == list(INVARIANTS)
    assert [c.get("name") for c in cases(root, "objectives")] == ["rto fault #1", "rpo_orders fault #1"]


def test_times_come_from_the_records():
    root = parse(make_journal("passed"))
    (inject,) = cases(root, "faults")
    (rollback,) = cases(root, "rollback")
    baseline = cases(root, "steady_state.baseline")[0]
    assert float(inject.get("time", "")) == pytest.approx(0.25)  # the inject result's own timing
    assert float(rollback.get("time", "")) == pytest.approx(0.75)  # rollback start to verify end
    assert float(baseline.get("time", "")) == pytest.approx(13.0)  # the judged window


def test_deviated_check_failure_says_observed_and_threshold():
    root = parse(make_journal("deviated"))
    (failed,) = [c for c in cases(root) if c.find("failure") is not None]
    assert failed.get("classname") == "steady_state.during"
    assert failed.get("name") == "error rate fault #1"
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message") == "error_rate: observed 0.112, threshold max 0.05"
    assert "samples: 10" in (failure.text or "")


def test_rollback_failure_names_target_and_errors():
    root = parse(make_journal("rollback_failed"))
    (rollback,) = cases(root, "rollback")
    failure = rollback.find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert "rollback matcher-1: SpawnError" in message
    assert "verify matcher-1: FaultStillPresentError" in message
    (inject,) = cases(root, "faults")
    assert inject.find("failure") is None


def test_skipped_injections_say_why():
    root = parse(make_journal("baseline_deviated", faults=2))
    for case in cases(root, "faults"):
        skipped = case.find("skipped")
        assert skipped is not None
        assert "baseline" in skipped.get("message", "")
    interrupted = parse(make_journal("interrupted", faults=2))
    first, second = cases(interrupted, "faults")
    assert first.find("skipped") is None
    skipped = second.find("skipped")
    assert skipped is not None
    assert "interrupted" in skipped.get("message", "")


def test_missed_objective_fails():
    journal = make_journal("passed")
    journal.objectives[0] = journal.objectives[0].model_copy(
        update={"observed": None, "met": False, "status": "failed"}
    )
    objective, rpo = cases(parse(journal), "objectives")
    assert rpo.find("failure") is None
    failure = objective.find("failure")
    assert failure is not None
    assert failure.get("message") == "rto: observed not measured, objective 20 s"


def test_run_errors_are_errors():
    root = parse(make_journal("error"))
    (error,) = root.iter("error")
    assert error.get("message") == "RuntimeError: probe sampler crashed"
    (case,) = [c for c in cases(root) if c.find("error") is not None]
    assert case.get("classname") == "errors.faults"


def test_text_is_escaped_and_control_characters_do_not_break_the_xml():
    journal = make_journal("error")
    hostile = '<script>alert(1)</script> & "quotes" \x1b[31mred\x1b[0m \x00'
    journal.experiment_title = hostile
    journal.errors.append(ErrorRecord(t=T0 + 5, phase="rollback", type="OSError", message=hostile))
    text = render_junit(journal)
    assert "<script>" not in text
    root = ET.fromstring(text)
    assert root.get("name", "").startswith('<script>alert(1)</script> & "quotes"')
    messages = [e.get("message", "") for e in root.iter("error")]
    assert any("alert(1)" in m for m in messages)


def test_unfinished_journal_is_an_error_not_green():
    journal = make_journal("passed")
    journal.verdict, journal.finished_at, journal.summary = "running", None, ""
    root = parse(journal)
    (case,) = [c for c in cases(root) if c.find("error") is not None]
    assert case.get("classname") == "run"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_renders_parseable_xml(scenario):
    assert parse(make_journal(scenario)).tag == "testsuites"


def test_write_junit_and_write_all(tmp_path: Path):
    journal = make_journal("deviated")
    path = write_junit(journal, tmp_path / "out" / "junit.xml")
    assert path.read_text(encoding="utf-8") == render_junit(journal)
    written = reports.write_all(journal, tmp_path / "run")
    assert written == {
        "html": tmp_path / "run" / "report.html",
        "junit": tmp_path / "run" / "junit.xml",
        "summary": tmp_path / "run" / "summary.md",
    }
    assert all(p.is_file() for p in written.values())
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "junit.xml",
        "report.html",
        "summary.md",
    ]  # no temp files


def test_public_api():
    assert sorted(reports.__all__) == [
        "render_html",
        "render_junit",
        "render_markdown",
        "write_all",
        "write_html",
        "write_junit",
        "write_markdown",
    ]
    assert all(callable(getattr(reports, name)) for name in reports.__all__)


def test_measured_times_are_properties_of_the_fault_case():
    journal = make_journal("passed")
    journal.faults[0].measured = {"elected_after_s": 0.45}
    (case,) = [c for c in cases(parse(journal), "faults")]
    assert {p.get("name"): p.get("value") for p in case.iter("property")} == {
        "elected_after_s": "0.45",
        "rto_s": "4.99",
        "from_start_s": "4.99",
        "impact_s": "4.99",
        "after_end_s": "0",
        "rto_from": "fault_start",
    }


def test_each_invariant_is_a_testcase_timed_by_its_check():
    journal = make_journal("passed")
    integrity = cases(parse(journal), "integrity")
    assert [c.get("name") for c in integrity] == list(INVARIANTS)
    assert all(c.find("failure") is None and c.find("error") is None for c in integrity)
    assert [float(c.get("time", "")) for c in integrity] == pytest.approx([r.took_s for r in journal.integrity])
    props = {p.get("name"): p.get("value") for p in integrity[0].iter("property")}
    assert props == {"checked": str(ACKNOWLEDGED), "violations": "0"}


def test_violated_invariant_fails_with_counts_description_and_examples():
    journal = make_journal("lost_orders")
    root = parse(journal)
    failed = [c for c in cases(root, "integrity") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["acknowledged_orders_persisted"]
    failure = failed[0].find("failure")
    assert failure is not None
    description = INVARIANTS["acknowledged_orders_persisted"]
    assert failure.get("message") == f"{LOST} of {ACKNOWLEDGED} violate: {description}"
    assert failure.get("type") == "failure"
    lines = (failure.text or "").splitlines()
    assert lines[0] == failure.get("message")
    assert len(lines) == 1 + 20 + 1  # the message, every example in the journal, and what is not listed
    first = journal.lost_orders[0]
    assert f'"order_id": "{first.order_id}"' in lines[1] and f'"found": "{first.found}"' in lines[1]
    assert lines[-1] == f"… {LOST - 20} more not listed in the journal"


def test_rpo_objective_fails_per_fault_through_the_objectives():
    root = parse(make_journal("lost_orders"))
    (rpo,) = [c for c in cases(root, "objectives") if c.get("name") == "rpo_orders fault #1"]
    failure = rpo.find("failure")
    assert failure is not None
    assert failure.get("message") == f"rpo_orders: observed {LOST} orders, objective 0 orders"
    assert "lost" in (failure.text or "")


def test_invariant_that_could_not_run_is_an_error_not_a_failure():
    journal = make_journal("passed")
    journal.integrity[3] = journal.integrity[3].model_copy(
        update={"ok": False, "checked": 0, "error": "ConnectionError: redis at 127.0.0.1:6390 refused"}
    )
    root = parse(journal)
    (case,) = [c for c in cases(root, "integrity") if c.get("name") == "balances_conserved"]
    assert case.find("failure") is None
    error = case.find("error")
    assert error is not None
    assert error.get("message") == "could not run: ConnectionError: redis at 127.0.0.1:6390 refused"
    assert INVARIANTS["balances_conserved"] in (error.text or "")
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("errors"), suite.get("failures")) == ("1", "0")


def test_violated_invariant_without_examples_or_description():
    journal = make_journal("passed")
    journal.integrity = [IntegrityRecord(name="custom_check", ok=False, checked=4, violations=1)]
    (case,) = cases(parse(journal), "integrity")
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "1 of 4 violate"
    assert (failure.text or "").splitlines() == ["1 of 4 violate", "… 1 more not listed in the journal"]


def test_example_text_is_escaped_in_the_xml():
    journal = make_journal("lost_orders")
    hostile = '<script>alert(1)</script> & "q" \x1b[31m'
    journal.integrity[0].examples = [{"order_id": hostile, hostile: None}]
    journal.integrity[0].description = hostile
    text = render_junit(journal)
    assert "<script>" not in text
    failure = next(c for c in cases(ET.fromstring(text), "integrity")).find("failure")
    assert failure is not None
    assert "<script>alert(1)</script>" in failure.get("message", "")
    assert "alert(1)" in (failure.text or "")


def test_journals_without_integrity_have_no_integrity_cases():
    for scenario in SCENARIOS:
        journal = make_journal(scenario)
        assert bool(cases(parse(journal), "integrity")) == bool(journal.integrity)
    assert cases(parse(make_journal("deviated")), "integrity") == []
