"""Verdicts from three outcomes: a check that judged nothing is not checked — never held, and named in the summary."""

from __future__ import annotations

import yaml

from engine.journal import CheckRecord, FaultRecord, Journal, JudgedPhase
from engine.metrics import MetricStore
from engine.model import Experiment, HttpProbe
from engine.probes import HttpSampler, judge
from engine.verdict import decide

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
