"""JUnit XML of a run's journal as GitLab, GitHub and Jenkins read it: one testcase per judgement.

Held is a passing testcase, failed a failure, and not checked a skipped one carrying why — except
an integrity check that could not run, which is an error. A deviated run always has a failing
testcase, so a CI that reads only this file never shows it green.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from engine.journal import (
    CheckRecord,
    FaultRecord,
    IntegrityRecord,
    Journal,
    ObjectiveRecord,
    TargetResult,
    write_atomic,
)
from reports.formatting import fault_name, utc_iso

# Characters XML 1.0 cannot carry: an ANSI colour code in an error message would make the file unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NEVER_INJECTED = ("pending", "skipped")


def _clean(text: object) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def _secs(value: float | None) -> str:
    return f"{max(value or 0.0, 0.0):.3f}"


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def _span(results: Iterable[TargetResult]) -> float | None:
    items = list(results)
    if not items:
        return None
    return max(r.finished_at for r in items) - min(r.started_at for r in items)


class _Suite:
    """Accumulates testcases and the counts the testsuite element must carry."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.cases: list[ET.Element] = []
        self.failures = self.errors = self.skipped = 0

    def case(self, classname: str, name: str, seconds: float | None) -> ET.Element:
        element = ET.Element("testcase", classname=_clean(classname), name=_clean(name), time=_secs(seconds))
        self.cases.append(element)
        return element

    def fail(self, case: ET.Element, message: str, body: str = "", kind: str = "failure") -> None:
        element = ET.SubElement(case, kind, message=_clean(message), type=kind)
        element.text = _clean(body or message)
        if kind == "error":
            self.errors += 1
        else:
            self.failures += 1

    def skip(self, case: ET.Element, message: str) -> None:
        ET.SubElement(case, "skipped", message=_clean(message))
        self.skipped += 1


def _check(suite: _Suite, check: CheckRecord) -> None:
    name = check.probe if check.fault_index is None else f"{check.probe} fault #{check.fault_index}"
    case = suite.case(f"steady_state.{check.phase}", name, check.window[1] - check.window[0])
    if check.status == "held":
        return
    if check.status == "not_checked":
        suite.skip(case, f"not checked: {check.why}")
        return
    measure = check.metric or check.kind
    if check.request:
        measure += f" of {check.request}"
    bounds = ", ".join(f"{side} {_num(v)}" for side, v in (("min", check.min), ("max", check.max)) if v is not None)
    message = f"{measure}: observed {_num(check.observed)}, threshold {bounds or 'none'}"
    start, end = (t - suite.journal.started_at for t in check.window)
    body = f"{message}\nsamples: {check.samples}\nwindow: {start:+.1f}s to {end:+.1f}s after the run's start"
    suite.fail(case, message, body + (f"\n{check.detail}" if check.detail else ""))


def _skip_reason(journal: Journal, fault: FaultRecord) -> str:
    if fault.error:
        return fault.error
    baseline = journal.phase("baseline")
    if baseline is not None and baseline.status == "deviated":
        return "not injected: the baseline steady state deviated"
    if journal.verdict == "interrupted":
        return "not injected: the run was interrupted"
    return f"not injected (status {fault.status}, run {journal.verdict})"


def _failed_targets(results: Iterable[TargetResult]) -> list[str]:
    return [f"{r.id}: {r.error or 'failed'}" for r in results if not r.ok]


def _fault(suite: _Suite, fault: FaultRecord) -> None:
    case = suite.case("faults", fault_name(fault), _span(fault.inject))
    # CI dashboards can trend failover and election times, and the recovery figures, from these
    figures = dict(fault.measured)
    rec = fault.recovery
    if rec is not None:
        recovery = {"rto_s": rec.rto_s, "from_start_s": rec.from_start_s, "impact_s": rec.impact_s}
        figures.update({k: v for k, v in {**recovery, "after_end_s": rec.after_end_s}.items() if v is not None})
    if figures or rec is not None:
        properties = ET.SubElement(case, "properties")
        for key, seconds in figures.items():
            ET.SubElement(properties, "property", name=key, value=f"{seconds:g}")
        if rec is not None:
            ET.SubElement(properties, "property", name="rto_from", value=rec.rto_from)
    if fault.status in _NEVER_INJECTED:
        suite.skip(case, _skip_reason(suite.journal, fault))
        return
    failed = _failed_targets(fault.inject)
    if fault.status == "failed" or failed:
        message = f"injection failed: {'; '.join(failed) or fault.error or 'no target reported success'}"
        suite.fail(case, message, "\n".join([message, *([fault.error] if fault.error else [])]))


def _rollback(suite: _Suite, fault: FaultRecord) -> None:
    case = suite.case("rollback", fault_name(fault), _span([*fault.rollback, *fault.verify]))
    touched = fault.inject or fault.rollback or fault.verify or (fault.plan is not None and fault.plan.targets)
    if fault.status in _NEVER_INJECTED or not touched:
        suite.skip(case, "nothing to roll back: nothing was injected")
        return
    problems = [f"rollback {p}" for p in _failed_targets(fault.rollback)]
    problems += [f"verify {p}" for p in _failed_targets(fault.verify)]
    if not fault.rollback:
        problems.append("no rollback recorded")
    elif fault.rollback and not fault.verify:
        problems.append("rollback not verified")
    if fault.status == "rollback_failed" and not problems:
        problems.append(fault.error or "rollback failed")
    if problems:
        suite.fail(case, "; ".join(problems), "\n".join(problems))


def _integrity(suite: _Suite, record: IntegrityRecord) -> None:
    """An invariant: a failure when items violate it, an error when it could not be checked."""
    case = suite.case("integrity", record.name, record.took_s)
    properties = ET.SubElement(case, "properties")
    for key, value in (("checked", record.checked), ("violations", record.violations)):
        ET.SubElement(properties, "property", name=key, value=str(value))
    about = [record.description] if record.description else []
    if record.error is not None:
        message = f"could not run: {record.error}"
        suite.fail(case, message, "\n".join([message, *about]), kind="error")
        return
    if record.status == "not_checked":
        suite.skip(case, f"not checked: {record.why}")
        return
    if record.status == "held":
        return
    message = f"{record.violations} of {record.checked} violate" + (f": {record.description}" if about else "")
    lines = [message, *(json.dumps(example, default=str, ensure_ascii=False) for example in record.examples)]
    if record.violations > len(record.examples):
        lines.append(f"… {record.violations - len(record.examples)} more not listed in the journal")
    suite.fail(case, message, "\n".join(lines))


def _objective(suite: _Suite, objective: ObjectiveRecord) -> None:
    name = objective.name if objective.fault_index is None else f"{objective.name} fault #{objective.fault_index}"
    case = suite.case("objectives", name, None)
    if objective.status == "held":
        return
    if objective.status == "not_checked":
        suite.skip(case, f"not checked: {objective.why or objective.detail}")
        return
    observed = "not measured" if objective.observed is None else f"{objective.observed:g} {objective.unit}"
    message = f"{objective.name}: observed {observed}, objective {objective.target:g} {objective.unit}"
    suite.fail(case, message, message + (f"\n{objective.detail}" if objective.detail else ""))


def _properties(journal: Journal) -> ET.Element:
    properties = ET.Element("properties")
    for name, value in (
        ("run_id", journal.run_id),
        ("verdict", journal.verdict),
        ("experiment_file", journal.experiment_file),
        ("experiment_sha256", journal.experiment_sha256),
        ("seed", journal.seed),
        ("tool_version", journal.tool_version),
    ):
        ET.SubElement(properties, "property", name=name, value=_clean(value))
    return properties


def build_junit(journal: Journal) -> ET.Element:
    """The <testsuites> element of a journal (see render_junit)."""
    suite = _Suite(journal)
    for check in journal.checks:
        _check(suite, check)
    for fault in journal.faults:
        _fault(suite, fault)
    for fault in journal.faults:
        _rollback(suite, fault)
    for record in journal.integrity:
        _integrity(suite, record)
    for objective in journal.objectives:
        _objective(suite, objective)
    for number, error in enumerate(journal.errors, start=1):
        case = suite.case(f"errors.{error.phase}", f"#{number} {error.type}", None)
        suite.fail(case, f"{error.type}: {error.message}", kind="error")
    if not journal.errors and journal.verdict in ("error", "interrupted", "running"):
        # The verdict says the run did not complete; CI must not show it green for lack of a testcase.
        why = {"running": "the run did not finish (journal verdict 'running')"}.get(journal.verdict, journal.verdict)
        suite.fail(suite.case("run", "verdict", None), journal.summary or why, kind="error")
    elif journal.verdict in ("deviated", "aborted") and not suite.failures and not suite.errors:
        # e.g. an objective the file asked for could not be checked: skipped above, but the run deviated.
        suite.fail(suite.case("run", "verdict", None), journal.summary or journal.verdict)

    end = journal.finished_at or max([journal.started_at, *(e.t for e in journal.events[-1:])])
    counts = {
        "tests": str(len(suite.cases)),
        "failures": str(suite.failures),
        "errors": str(suite.errors),
        "skipped": str(suite.skipped),
        "time": _secs(end - journal.started_at),
    }
    title = _clean(journal.experiment_title)
    root = ET.Element("testsuites", {"name": title, **counts})
    # JUnit's timestamp has no zone: it is UTC here, as the run id and the journal are.
    timestamp = utc_iso(journal.started_at, zone="")
    element = ET.SubElement(root, "testsuite", {"name": title, **counts, "timestamp": timestamp})
    element.append(_properties(journal))
    element.extend(suite.cases)
    out = ET.SubElement(element, "system-out")
    out.text = _clean(f"run {journal.run_id}: {journal.verdict}. {journal.summary}".strip())
    return root


def render_junit(journal: Journal) -> str:
    """JUnit XML for CI: checks, injections, rollbacks, invariants and objectives as testcases, run errors as errors."""
    root = build_junit(journal)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(journal: Journal, path: Path) -> Path:
    """Write the JUnit XML atomically to `path` and return it."""
    write_atomic(path, render_junit(journal))
    return path
