"""The run's verdict, exit code and one-sentence summary, from the journal's outcomes.

Each check, objective and invariant is held, failed or not checked. Failed ones make the run
deviate. Not checked ones are named in the summary and never counted as held; they make the run
deviate when the judgement should have been possible: a check that could not run (an error), a
steady-state check before any fault, or an objective written in the experiment file. The default
rpo_orders objective on a system whose load records no acknowledgements is "not checked" and says so.

A drill is judged by the same rules, one level up (`decide_drill`): its experiments' verdicts and
exit codes combined, then its own objectives, where "not checked" counts as missed (the drill asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from engine.errors import ExitCode
from engine.journal import CheckRecord, FaultRecord, IntegrityRecord, Journal, ObjectiveRecord, Verdict
from engine.model import Experiment
from engine.wording import Wording, for_stack

PERSISTED = "acknowledged_orders_persisted"
DrillVerdict = Literal["passed", "failed", "aborted", "interrupted", "error"]
NOT_ROLLED_BACK = "could NOT be rolled back: check the system now"


def _describe_check(check: CheckRecord) -> str:
    observed = "nothing" if check.observed is None else f"{check.observed:g}"
    limits = " and ".join(
        text
        for text in (
            f">= {check.min:g}" if check.min is not None else "",
            f"<= {check.max:g}" if check.max is not None else "",
        )
        if text
    )
    where = check.phase if check.fault_index is None else f"{check.phase} fault #{check.fault_index}"
    if check.status == "not_checked":
        return f"{check.probe} ({where}) was not checked: {check.why}"
    return f"{check.probe} ({where}) was {observed}, expected {limits}"


def _describe_fault(fault: FaultRecord, rto_objective: float | None) -> str:
    rec = fault.recovery
    head = f"#{fault.index} {fault.kind} on {fault.target}"
    if rec is None:
        return head
    if not rec.recovered or rec.rto_s is None:
        return f"{head} did not recover"
    objective = f" (objective {rto_objective:g}s)" if rto_objective is not None else ""
    basis = "" if rec.rto_from == "fault_start" else " after the fault ended"
    return f"{head} recovered in {rec.rto_s:g}s{basis}{objective}"


def _describe_objective(objective: ObjectiveRecord, words: Wording) -> str:
    where = "outside any fault" if objective.fault_index is None else f"of fault #{objective.fault_index}"
    if objective.name == "rpo_orders":
        if objective.observed is None:
            return f"RPO {where} not checked: {objective.why or 'the acknowledgements could not be reconciled'}"
        lost = f"acknowledged {words.order}(s)"
        return f"{objective.observed:g} {lost} lost {where}, objective {objective.target:g}"
    observed = "not reached" if objective.observed is None else f"{objective.observed:g}s"
    return f"RTO {where} was {observed}, objective {objective.target:g}s"


def _describe_invariant(record: IntegrityRecord) -> str:
    if record.error:
        return f"integrity {record.name} could not be checked: {record.error}"
    if record.status == "not_checked":
        return f"integrity {record.name} not checked: {record.why}"
    return f"integrity {record.name}: {record.violations} of {record.checked} violate it"


def _blocking_objective(objective: ObjectiveRecord, experiment: Experiment) -> bool:
    if objective.status == "failed":
        return True
    # Not checked: only an objective the experiment file asked for must be checkable.
    return objective.status == "not_checked" and objective.name in experiment.objectives.model_fields_set


def integrity_sentence(journal: Journal, words: Wording) -> str:
    """What the integrity phase established, and only that: held checks, and those not checked and why."""
    records = journal.integrity
    if not records:
        return "No integrity check ran."
    held = [r for r in records if r.status == "held"]
    unchecked = [r for r in records if r.status == "not_checked"]
    parts = []
    persisted = next((r for r in held if r.name == PERSISTED), None)
    if held and len(held) == len(records):
        parts.append(f"Integrity held: all {len(records)} check(s)")
    elif held:
        parts.append(f"Integrity held for {', '.join(r.name for r in held)}")
    if persisted is not None and journal.ledger is not None:
        parts[-1] += f", all {words.count(journal.ledger.acknowledged, 'acknowledged')} accounted for"
    text = ". ".join(parts) + "." if parts else ""
    text += "".join(f" {r.name} held on {r.why}." for r in held if r.why)  # a sample is said to be one
    if unchecked:
        text += " Not checked: " + "; ".join(f"{r.name} ({r.why or r.error})" for r in unchecked) + "."
    return text.strip()


def decide(
    journal: Journal, experiment: Experiment, interrupted: str | None, aborted: str | None = None
) -> tuple[Verdict, int, str]:
    """The verdict, exit code and one-sentence summary; the order of the tests is the precedence."""
    words = for_stack(journal.stack)
    faults = journal.faults
    stuck = [f for f in faults if f.status == "rollback_failed"]
    failed = [f for f in faults if f.status == "failed" or any(not r.ok for r in f.inject)]
    # Before any fault a check that did not run is as bad as one that failed: nothing was injected either way.
    baseline_failed = [c for c in journal.checks if c.phase == "baseline" and c.status != "held"]
    failed_checks = [c for c in journal.checks if c.status == "failed"]
    missed = [o for o in journal.objectives if _blocking_objective(o, experiment)]
    rto = experiment.objectives.rto
    recovered = "; ".join(_describe_fault(f, rto) for f in faults if f.recovery is not None)
    if stuck:
        names = ", ".join(f"#{f.index} {f.kind} on {f.target}" for f in stuck)
        return (
            "rollback_failed",
            ExitCode.ROLLBACK_FAILED,
            f"fault(s) {names} {NOT_ROLLED_BACK}.",
        )
    if aborted:
        unsound = [r.name for r in journal.integrity if r.status == "failed" or r.error]
        tail = f" Integrity also failed: {', '.join(unsound)}." if unsound else ""
        return "aborted", ExitCode.DEVIATED, f"Aborted: {aborted}; every injected fault was rolled back.{tail}"
    if interrupted:
        return (
            "interrupted",
            ExitCode.INTERRUPTED,
            f"Interrupted by {interrupted}; every injected fault was rolled back.",
        )
    if journal.errors or failed:
        first = journal.errors[0].message if journal.errors else (failed[0].error or "injection failed")
        return "error", ExitCode.CANNOT_RUN, f"The experiment could not run as planned: {first}"
    if baseline_failed:
        unverified = all(c.status == "not_checked" for c in baseline_failed)
        head = "was not verified" if unverified else "did not hold"
        why = "; ".join(_describe_check(c) for c in baseline_failed)
        summary = f"The steady state {head} before any fault, so nothing was injected: {why}."
        return "deviated", ExitCode.DEVIATED, summary
    broken = [r for r in journal.integrity if r.status == "failed" or r.error]
    if failed_checks or missed or broken:
        reasons = [_describe_check(c) for c in failed_checks]
        reasons += [_describe_objective(o, words) for o in missed]
        reasons += [_describe_invariant(r) for r in broken]
        return "deviated", ExitCode.DEVIATED, "The hypothesis deviated: " + "; ".join(reasons) + "."
    tail = f" {recovered}." if recovered else ""
    unchecked = [c for c in journal.checks if c.status == "not_checked"]
    if unchecked:
        where = [c.phase if c.fault_index is None else f"{c.phase} fault #{c.fault_index}" for c in unchecked]
        tail += (
            " Not checked: "
            + "; ".join(f"{c.probe} ({w}): {c.why}" for c, w in zip(unchecked, where, strict=True))
            + "."
        )
    if journal.integrity or journal.phase("integrity") is not None:
        tail += " " + integrity_sentence(journal, words)
    return "passed", ExitCode.PASSED, f"The steady state held before and after the faults.{tail}"


class DrillPart(Protocol):
    """One experiment of a drill as its verdict sees it (drilling.record.DrillExperimentRecord)."""

    @property
    def verdict(self) -> str: ...  # the journal's, or error (could not run), skipped, running (interrupted)

    @property
    def exit_code(self) -> int | None: ...


class DrillStep(Protocol):
    """One runbook step as the drill's summary counts it (drilling.record.StepRecord)."""

    @property
    def status(self) -> str: ...


def _steps_sentence(steps: Sequence[DrillStep]) -> str:
    done = sum(1 for s in steps if s.status in ("done", "late"))
    late = sum(1 for s in steps if s.status == "late")
    return f"{done}/{len(steps)} runbook steps done" + (f" ({late} late)" if late else "")


def decide_drill(
    parts: Sequence[DrillPart],
    objectives: Sequence[ObjectiveRecord],
    steps: Sequence[DrillStep],
    *,
    interrupted: bool,
    could_not_run: str = "",
) -> tuple[DrillVerdict, int, str]:
    """A drill's verdict, exit code and summary; the order of the tests is the precedence.

    A stuck rollback anywhere outranks everything (the system may be broken), then an interrupt, an
    experiment that could not run (`could_not_run` says why, when known), an aborted one, and then
    any experiment that did not pass or objective not held. Runbook steps do not change the verdict
    (a missed one is in the record and the count); skipped experiments never ran and are not failures.
    """
    codes = [p.exit_code for p in parts if p.exit_code is not None]
    failed = [str(i + 1) for i, p in enumerate(parts) if p.verdict not in ("passed", "skipped")]
    missed = [o.name for o in objectives if o.status != "held"]  # not checked is never held
    verdict: DrillVerdict
    if ExitCode.ROLLBACK_FAILED in codes:
        verdict, code, headline = "failed", ExitCode.ROLLBACK_FAILED, f"a fault {NOT_ROLLED_BACK}"
    elif interrupted or ExitCode.INTERRUPTED in codes:
        verdict, code, headline = "interrupted", ExitCode.INTERRUPTED, "interrupted; faults were rolled back"
    elif ExitCode.CANNOT_RUN in codes:
        verdict, code, headline = "error", ExitCode.CANNOT_RUN, could_not_run or "an experiment could not run"
    elif any(p.verdict == "aborted" for p in parts):
        verdict, code, headline = "aborted", ExitCode.DEVIATED, "an experiment was aborted"
    elif failed or missed:
        reasons = [f"experiment(s) {', '.join(failed)} did not pass"] if failed else []
        reasons += [f"objective(s) missed: {', '.join(missed)}"] if missed else []
        verdict, code, headline = "failed", ExitCode.DEVIATED, "; ".join(reasons)
    else:
        verdict, code, headline = "passed", ExitCode.PASSED, "every experiment passed and every objective was met"
    return verdict, code, f"{headline}; {_steps_sentence(steps)}."
