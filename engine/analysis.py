"""After the load: the steady-state series, checks per fault window and recovery, RTO, objectives, verdict."""

from __future__ import annotations

import math

from engine.errors import ExitCode
from engine.journal import CheckRecord, FaultRecord, Journal, ObjectiveRecord, SteadyPoint, Verdict
from engine.metrics import MetricStore
from engine.model import Experiment
from engine.probes import HttpSampler, judge, second_failures
from engine.recovery import measure


def steady_series(
    experiment: Experiment, store: MetricStore, samplers: dict[str, HttpSampler], start: float, end: float
) -> list[SteadyPoint]:
    points = []
    for second in range(math.ceil(start), math.floor(end)):
        failing = second_failures(list(experiment.steady_state), second, store, samplers)
        points.append(SteadyPoint(t=float(second), ok=not failing, failing=failing))
    return points


def analyse(
    journal: Journal,
    experiment: Experiment,
    store: MetricStore,
    samplers: dict[str, HttpSampler],
    load_start: float,
    load_end: float,
) -> None:
    """Fill in the journal's steady series, during/recovery checks, recovery records and objectives."""
    journal.metrics = store.series(load_start, load_end)
    journal.steady = steady_series(experiment, store, samplers, load_start, load_end)
    stable_for = experiment.recovery.stable_for
    injected = [f for f in journal.faults if f.injected_at is not None]
    for fault in injected:
        assert fault.injected_at is not None
        end = fault.ended_at or load_end
        for probe in experiment.steady_state:
            check = judge(probe, "during", (fault.injected_at, end), store, samplers, fault.index)
            if check is not None:
                journal.checks.append(check)
        fault.recovery = measure(journal.steady, fault.injected_at, end, load_end, stable_for)
        if experiment.objectives.rto is not None:
            rto = fault.recovery.rto_s
            journal.objectives.append(
                ObjectiveRecord(
                    name="rto",
                    target=experiment.objectives.rto,
                    observed=rto,
                    unit="s",
                    met=rto is not None and rto <= experiment.objectives.rto,
                    fault_index=fault.index,
                    detail=fault.recovery.detail,
                )
            )
    if injected and journal.verdict != "interrupted":
        ends = [f.ended_at or load_end for f in injected]
        ends += [f.recovery.recovered_at for f in injected if f.recovery and f.recovery.recovered_at]
        window = (max(ends), load_end)
        for probe in experiment.steady_state:
            recovery_check = judge(probe, "recovery", window, store, samplers)
            if recovery_check is not None:
                journal.checks.append(recovery_check)


def _failed_checks(checks: list[CheckRecord]) -> list[CheckRecord]:
    return [c for c in checks if not c.ok]


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
    return f"{check.probe} ({where}) was {observed}, expected {limits}"


def _describe_fault(fault: FaultRecord, rto_objective: float | None) -> str:
    rec = fault.recovery
    head = f"#{fault.index} {fault.kind} on {fault.target}"
    if rec is None:
        return head
    if not rec.recovered:
        return f"{head} did not recover"
    objective = f" (objective {rto_objective:g}s)" if rto_objective is not None else ""
    return f"{head} recovered in {rec.rto_s:g}s{objective}"


def decide(
    journal: Journal, experiment: Experiment, interrupted: str | None, aborted: str | None = None
) -> tuple[Verdict, int, str]:
    """The verdict, exit code and one-sentence summary; the order of the tests is the precedence."""
    faults = journal.faults
    stuck = [f for f in faults if f.status == "rollback_failed"]
    failed = [f for f in faults if f.status == "failed" or any(not r.ok for r in f.inject)]
    baseline_failed = _failed_checks([c for c in journal.checks if c.phase == "baseline"])
    failed_checks = _failed_checks(journal.checks)
    missed = [o for o in journal.objectives if not o.met]
    rto = experiment.objectives.rto
    recovered = "; ".join(_describe_fault(f, rto) for f in faults if f.recovery is not None)
    if stuck:
        names = ", ".join(f"#{f.index} {f.kind} on {f.target}" for f in stuck)
        return (
            "rollback_failed",
            ExitCode.ROLLBACK_FAILED,
            f"fault(s) {names} could NOT be rolled back: check the system now.",
        )
    if aborted:
        unsound = [r.name for r in journal.integrity if not r.ok]
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
        return (
            "deviated",
            ExitCode.DEVIATED,
            (
                "The steady state did not hold before any fault, so nothing was injected: "
                + "; ".join(_describe_check(c) for c in baseline_failed)
                + "."
            ),
        )
    broken = [r for r in journal.integrity if not r.ok]
    if failed_checks or missed or broken:
        reasons = [_describe_check(c) for c in failed_checks]
        reasons += [_describe_objective(o) for o in missed]
        reasons += [
            f"integrity {r.name} could not be checked: {r.error}"
            if r.error
            else f"integrity {r.name}: {r.violations} of {r.checked} violate it"
            for r in broken
        ]
        return "deviated", ExitCode.DEVIATED, "The hypothesis deviated: " + "; ".join(reasons) + "."
    tail = f" {recovered}." if recovered else ""
    if journal.ledger is not None and journal.integrity:
        tail += f" Integrity held: all {journal.ledger.acknowledged} acknowledged orders accounted for."
    return "passed", ExitCode.PASSED, f"The steady state held before and after the faults.{tail}"


def _describe_objective(objective: ObjectiveRecord) -> str:
    where = "outside any fault" if objective.fault_index is None else f"of fault #{objective.fault_index}"
    if objective.name == "rpo_orders":
        if objective.observed is None:
            return f"RPO {where} not measured (acknowledged orders could not be checked)"
        return f"{objective.observed:g} acknowledged order(s) lost {where}, objective {objective.target:g}"
    observed = "not reached" if objective.observed is None else f"{objective.observed:g}s"
    return f"RTO {where} was {observed}, objective {objective.target:g}s"
