"""From a validated experiment to a plan: fault kinds bound to injectors, params typed, rules checked.

Everything here happens before anything is started, and every problem points at its own line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine import plan_checks as checks
from engine.errors import InvalidInputError, Problem
from engine.loader import LoadedDocument, Locator, load_document, sort_problems, validate_model
from engine.model import Experiment, FaultStep
from engine.stack import read_description, reference_endpoints, reference_targets
from injectors.base import FaultSpec, Injector


@dataclass(frozen=True)
class PlannedFault:
    index: int  # 1-based, in timeline order; reports call it '#index'
    step: FaultStep
    injector: type[Injector[FaultSpec]]
    spec: FaultSpec

    @property
    def start_s(self) -> float:
        return self.step.at

    @property
    def end_s(self) -> float:
        return self.step.at + self.step.duration

    def label(self) -> str:
        return self.step.name or f"{self.step.kind} {self.step.target}"


@dataclass(frozen=True)
class Plan:
    experiment: Experiment
    document: LoadedDocument
    faults: list[PlannedFault]
    locustfile: Path

    @property
    def base_dir(self) -> Path:
        return self.document.path.resolve().parent


def _stack_names(
    experiment: Experiment, base_dir: Path, locator: Locator
) -> tuple[dict[str, str] | None, set[str] | None, list[Problem]]:
    """Targets (name → kind) and endpoint names the stack offers, when they can be known before the run."""
    if experiment.stack.reference is not None:
        profile = experiment.stack.reference
        return reference_targets(profile), reference_endpoints(profile), []
    assert experiment.stack.file is not None
    path = (base_dir / experiment.stack.file).resolve()
    if not path.is_file():
        return (
            None,
            None,
            [locator.problem(("stack", "file"), f"stack description {experiment.stack.file!r} not found")],
        )
    try:
        desc = read_description(path)
    except InvalidInputError as exc:
        return None, None, exc.problems
    return {name: target.kind for name, target in desc.targets.items()}, set(desc.endpoints), []


def check(experiment: Experiment, doc: LoadedDocument) -> tuple[list[PlannedFault], list[Problem]]:
    """Bind kinds and params and check the cross-field rules; returns the faults and every problem.

    One check per section (engine.plan_checks), in the file's order; each fault is checked in timeline order.
    """
    loc = doc.locator
    base_dir = doc.path.resolve().parent
    targets, endpoints, problems = _stack_names(experiment, base_dir, loc)
    problems = [*problems, *checks.check_load(experiment, base_dir, endpoints, loc)]
    steady, probes = checks.check_steady_state(experiment, endpoints, loc)
    problems += steady
    problems += checks.check_abort_conditions(experiment, probes, loc, endpoints)
    faults: list[PlannedFault] = []
    order = sorted(range(len(experiment.method)), key=lambda i: experiment.method[i].at)
    for position, i in enumerate(order, start=1):
        step = experiment.method[i]
        problems += checks.check_timing(experiment, i, loc)
        problems += checks.check_guards(experiment, i, loc)
        bound, bind_problems = checks.bind_fault(step, ("method", i), targets, loc)
        problems += bind_problems
        if bound is not None:
            faults.append(PlannedFault(position, step, *bound))
    problems += checks.check_integrity(experiment, loc, endpoints)
    return faults, problems


def load_plan(path: Path) -> Plan:
    """Read, validate and check an experiment file; raises InvalidInputError listing every problem."""
    doc = load_document(path)
    experiment = validate_model(Experiment, doc)
    faults, problems = check(experiment, doc)
    if problems:
        raise InvalidInputError(sort_problems(problems))
    return Plan(experiment, doc, faults, (doc.path.resolve().parent / experiment.load.locustfile).resolve())
