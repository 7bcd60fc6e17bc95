"""Verdicts from three outcomes: a check that judged nothing is not checked — never held, and named in the summary.

A drill is judged by the same module (`decide_drill`): its experiments combined, then its own objectives.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from engine.errors import ExitCode
from engine.journal import CheckRecord, FaultRecord, Journal, JudgedPhase, ObjectiveRecord, Status
from engine.metrics import MetricStore
from engine.model import Experiment, HttpProbe
from engine.probes import HttpSampler, judge
from engine.verdict import decide, decide_drill

T = 1_800_000_000.0
EXPERIMENT = Experiment.model_validate(
    yaml.safe_load(
        """
version: 1
title: t
load: {locustfile: x.py, users: 1, spawn_rate: 1, duration: 30s}
steady_state:
  - {name: gateway health, http: {url: "http://127.0.0.1:9/health", interval: 5s}, during: {max: 0.5}}
method:
  - {at: 10s, duration: 2s, kind: process.kill, target: web}
"""
    )
)


def journal_with(*checks: CheckRecord, trading: bool = False) -> Journal:
    fault = FaultRecord(index=1, kind="process.kill", target="web", at_s=10.0, duration_s=2.0, status="rolled_back")
    return Journal(
        run_id="r",
        tool_version="t",
        experiment_title="t",
        experiment_file="e.yaml",
        experiment_sha256="0" * 64,
        experiment={},
        stack={"name": "web", "trading": trading},
        seed=1,
        started_at=T,
        faults=[fault],
        checks=list(checks),
    )


def no_sample_check(phase: JudgedPhase) -> CheckRecord:
    probe = EXPERIMENT.steady_state[0]
    assert isinstance(probe, HttpProbe)
    sampler = HttpSampler(probe, probe.http.url)  # never started: no sample falls into any window
    check = judge(probe, phase, (T + 10, T + 12), MetricStore(), {probe.name: sampler}, 1)
    assert check is not None
    return check


def test_a_window_shorter_than_the_probe_interval_is_not_checked() -> None:
    check = no_sample_check("during")
    assert (check.status, check.ok) == ("not_checked", False)
    assert check.why == "no sample in the window (the probe samples every 5s)"


def test_not_checked_is_named_in_a_passed_summary_and_never_called_held() -> None:
    verdict, code, summary = decide(journal_with(no_sample_check("during")), EXPERIMENT, None)
    assert (verdict, code) == ("passed", 0)
    assert "Not checked: gateway health (during fault #1): no sample in the window" in summary


def test_an_unverified_baseline_injects_nothing_and_says_why() -> None:
    verdict, _, summary = decide(journal_with(no_sample_check("baseline")), EXPERIMENT, None)
    assert verdict == "deviated"
    assert summary.startswith("The steady state was not verified before any fault, so nothing was injected")


# -- a drill: its experiments' verdicts and its own objectives, by the same rules ---------------------
@dataclass(frozen=True)
class Part:
    verdict: str
    exit_code: int | None


@dataclass(frozen=True)
class Step:
    status: str


PASSED = Part("passed", ExitCode.PASSED)
DEVIATED = Part("deviated", ExitCode.DEVIATED)
ABORTED = Part("aborted", ExitCode.DEVIATED)
STUCK = Part("rollback_failed", ExitCode.ROLLBACK_FAILED)
INTERRUPTED = Part("interrupted", ExitCode.INTERRUPTED)
CANNOT_RUN = Part("error", ExitCode.CANNOT_RUN)
SKIPPED = Part("skipped", None)
DONE = [Step("done"), Step("done")]
STEPS = "; 2/2 runbook steps done."


def objective(name: str, status: Status) -> ObjectiveRecord:
    return ObjectiveRecord(name=name, target=1.0, observed=None, unit="s", status=status)


HELD = [objective("rto", "held"), objective("rpo_orders", "held")]


@pytest.mark.parametrize(
    ("parts", "objectives", "interrupted", "expected"),
    [
        ([PASSED, PASSED], HELD, False, ("passed", 0, "every experiment passed and every objective was met")),
        ([PASSED, SKIPPED], [], False, ("passed", 0, "every experiment passed and every objective was met")),
        ([PASSED, DEVIATED], HELD, False, ("failed", 1, "experiment(s) 2 did not pass")),
        ([DEVIATED, ABORTED], HELD, False, ("aborted", 1, "an experiment was aborted")),
        ([ABORTED, CANNOT_RUN], HELD, False, ("error", 4, "an experiment could not run")),
        ([CANNOT_RUN], HELD, True, ("interrupted", 130, "interrupted; faults were rolled back")),
        ([PASSED, INTERRUPTED], HELD, False, ("interrupted", 130, "interrupted; faults were rolled back")),
        ([ABORTED], HELD, True, ("interrupted", 130, "interrupted; faults were rolled back")),
        ([INTERRUPTED, STUCK], HELD, True, ("failed", 3, "a fault could NOT be rolled back: check the system now")),
        ([PASSED], [objective("rto", "failed")], False, ("failed", 1, "objective(s) missed: rto")),
        ([PASSED], [objective("rpo_orders", "not_checked")], False, ("failed", 1, "objective(s) missed: rpo_orders")),
        (
            [DEVIATED, Part("running", None), PASSED],
            [objective("rto", "held"), objective("time_to_detect", "not_checked")],
            False,
            ("failed", 1, "experiment(s) 1, 2 did not pass; objective(s) missed: time_to_detect"),
        ),
        ([Part("error", ExitCode.INVALID_INPUT)], [], False, ("failed", 1, "experiment(s) 1 did not pass")),
        ([], [], False, ("passed", 0, "every experiment passed and every objective was met")),
    ],
)
def test_a_drill_combines_its_experiments_and_objectives(
    parts: list[Part], objectives: list[ObjectiveRecord], interrupted: bool, expected: tuple[str, int, str]
) -> None:
    verdict, code, headline = expected
    assert decide_drill(parts, objectives, DONE, interrupted=interrupted) == (verdict, code, headline + STEPS)


def test_a_drill_that_could_not_run_says_why() -> None:
    why = "experiment 2 could not run: no reference stack is running"
    assert decide_drill([PASSED, CANNOT_RUN], HELD, DONE, interrupted=False, could_not_run=why) == (
        "error",
        ExitCode.CANNOT_RUN,
        why + STEPS,
    )
    # Only a cannot-run outcome uses it: a later rule writes its own headline.
    assert decide_drill([DEVIATED], [], DONE, interrupted=False, could_not_run=why)[2].startswith("experiment(s) 1")


def test_runbook_steps_are_counted_but_do_not_decide() -> None:
    steps = [Step("done"), Step("late"), Step("missed"), Step("skipped")]
    assert decide_drill([PASSED], HELD, steps, interrupted=False) == (
        "passed",
        ExitCode.PASSED,
        "every experiment passed and every objective was met; 2/4 runbook steps done (1 late).",
    )
    assert decide_drill([PASSED], [], [], interrupted=False)[2].endswith("; 0/0 runbook steps done.")


def test_not_checked_is_never_counted_as_held() -> None:
    for status in ("not_checked", "failed"):
        verdict, code, summary = decide_drill([PASSED], [objective("rto", status)], DONE, interrupted=False)
        assert (verdict, code) == ("failed", ExitCode.DEVIATED) and "objective(s) missed: rto" in summary
