"""The run-time core: experiment model and loader, plan, runner phases, load, probes, journal."""

from engine.api import RunOptions, RunOutcome, describe, run_experiment
from engine.errors import ChaosError, ExitCode, InvalidInputError, PreflightError, Problem
from engine.journal import Journal, load_journal
from engine.plan import Plan, load_plan

__all__ = [
    "ChaosError",
    "ExitCode",
    "InvalidInputError",
    "Journal",
    "Plan",
    "PreflightError",
    "Problem",
    "RunOptions",
    "RunOutcome",
    "describe",
    "load_journal",
    "load_plan",
    "run_experiment",
]
