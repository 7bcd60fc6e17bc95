"""From a validated experiment to a plan: fault kinds bound to injectors, params typed, rules checked.

Everything here happens before anything is started, and every problem points at its own line.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.durations import format_duration
from engine.errors import InvalidInputError, Problem
from engine.integrity import get_check
from engine.loader import (
    LoadedDocument,
    Locator,
    load_document,
    problems_from_validation,
    sort_problems,
    validate_model,
)
from engine.model import Experiment, FaultStep, HttpProbe
from engine.probes import render_url
from engine.stack import REFERENCE_ENDPOINTS, REFERENCE_TARGETS, read_description
from injectors.base import FaultSpec, Injector
from injectors.registry import UnknownKindError, get_injector


@dataclass(frozen=True)
class PlannedFault:
    index: int  # 1-based, in timeline order; reports call it '#index'
    step: FaultStep
    injector: type[Injector[Any]]
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
        return dict(REFERENCE_TARGETS[profile]), set(REFERENCE_ENDPOINTS[profile]), []
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
    """Bind kinds and params and check the cross-field rules; returns the faults and every problem."""
    loc = doc.locator
    base_dir = doc.path.resolve().parent
    problems: list[Problem] = []
    targets, endpoints, stack_problems = _stack_names(experiment, base_dir, loc)
    problems.extend(stack_problems)

    load = experiment.load
    locustfile = (base_dir / load.locustfile).resolve()
    if not locustfile.is_file():
        problems.append(
            loc.problem(
                ("load", "locustfile"),
                f"locustfile {load.locustfile!r} not found (paths are relative to the experiment file)",
            )
        )
    if load.warmup >= load.duration:
        problems.append(
            loc.problem(("load", "warmup"), "warmup is as long as the whole load: no baseline can be judged")
        )
    if "://" not in load.host and endpoints is not None and load.host not in endpoints:
        problems.append(
            loc.problem(
                ("load", "host"),
                f"the stack has no endpoint {load.host!r} (known: {', '.join(sorted(endpoints))})",
            )
        )

    seen: dict[str, int] = {}
    for i, probe in enumerate(experiment.steady_state):
        if probe.name in seen:
            problems.append(
                loc.problem(
                    ("steady_state", i, "name"),
                    f"probe name {probe.name!r} is already used by probe #{seen[probe.name] + 1}",
                )
            )
        seen.setdefault(probe.name, i)
        if isinstance(probe, HttpProbe) and endpoints is not None:
            try:
                render_url(probe.http.url, dict.fromkeys(endpoints, "http://x"))
            except KeyError as exc:
                problems.append(
                    loc.problem(
                        ("steady_state", i, "http", "url"),
                        f"unknown endpoint {{{exc.args[0]}}} in url (known: {', '.join(sorted(endpoints))})",
                    )
                )

    for i, condition in enumerate(experiment.abort_when):
        if condition.probe is not None and condition.probe not in seen:
            close = difflib.get_close_matches(condition.probe, list(seen), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"probes are: {', '.join(seen) or 'none'}"
            problems.append(
                loc.problem(("abort_when", i, "probe"), f"no steady-state probe named {condition.probe!r}; {hint}")
            )

    order = sorted(range(len(experiment.method)), key=lambda i: experiment.method[i].at)
    faults: list[PlannedFault] = []
    tail = experiment.recovery.stable_for
    for position, i in enumerate(order, start=1):
        step = experiment.method[i]
        where = ("method", i)
        if step.at < load.warmup + 2.0:
            problems.append(
                loc.problem(
                    (*where, "at"),
                    f"fault starts at {format_duration(step.at)}: the baseline needs at least 2s of load "
                    f"after the {format_duration(load.warmup)} warmup to be judged before any fault",
                )
            )
        latest_end = load.duration - tail
        if step.at + step.duration > latest_end:
            problems.append(
                loc.problem(
                    (*where, "duration"),
                    f"fault ends at {format_duration(step.at + step.duration)}, but the load lasts "
                    f"{format_duration(load.duration)}: end faults by {format_duration(max(latest_end, 0))} "
                    f"so recovery ({format_duration(tail)}) can be observed",
                )
            )
        problems.extend(_blast_radius(experiment, i, loc))
        if targets is not None and step.target not in targets:
            close = difflib.get_close_matches(step.target, sorted(targets), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"the stack has: {', '.join(sorted(targets))}"
            problems.append(loc.problem((*where, "target"), f"unknown target {step.target!r}; {hint}"))
        try:
            injector = get_injector(step.kind)
        except UnknownKindError as exc:
            problems.append(loc.problem((*where, "kind"), str(exc)))
            continue
        target_kind = targets.get(step.target) if targets is not None else None
        if target_kind is not None and target_kind not in injector.target_kinds:
            wanted = " or ".join(injector.target_kinds)
            problems.append(
                loc.problem(
                    (*where, "target"), f"{step.kind} acts on {wanted} targets; {step.target!r} is a {target_kind}"
                )
            )
        try:
            spec = injector.parse_params(step.params)
        except ValidationError as exc:
            problems.extend(problems_from_validation(exc, loc, prefix=(*where, "params")))
            continue
        if step.select is not None and not injector.selectable:
            problems.append(loc.problem((*where, "select"), f"{step.kind} chooses its own targets; remove `select`"))
        for param, name in injector.referenced_targets(spec).items():
            if targets is not None and name not in targets:
                known = ", ".join(sorted(targets))
                problems.append(
                    loc.problem(
                        (*where, "params", param) if param in step.params else (*where, "target"),
                        f"params.{param} names target {name!r}, which the stack does not have (it has: {known})",
                    )
                )
        faults.append(PlannedFault(position, step, injector, spec))
    for position, name in enumerate(experiment.integrity or []):
        try:
            get_check(name)
        except KeyError as exc:
            problems.append(loc.problem(("integrity", position), str(exc.args[0])))
    return faults, problems


def _blast_radius(experiment: Experiment, i: int, loc: Locator) -> list[Problem]:
    """The guards one step can break on paper: overlapping faults, and too wide a selection."""
    guards = experiment.guards
    step = experiment.method[i]
    problems: list[Problem] = []
    in_effect = [
        j
        for j, other in enumerate(experiment.method)
        if j != i and other.at <= step.at < other.at + other.duration and (other.at, j) < (step.at, i)
    ]
    if len(in_effect) + 1 > guards.max_concurrent_faults:
        others = ", ".join(f"method[{j}] {experiment.method[j].kind}" for j in in_effect)
        problems.append(
            loc.problem(
                ("method", i, "at"),
                f"at {format_duration(step.at)} this fault makes {len(in_effect) + 1} faults in effect at once "
                f"(with {others}); guards.max_concurrent_faults is {guards.max_concurrent_faults}",
            )
        )
    select = step.select
    if select is not None and select.count is not None and select.count > guards.max_targets_per_fault:
        problems.append(
            loc.problem(
                ("method", i, "select", "count"),
                f"count {select.count} is over guards.max_targets_per_fault ({guards.max_targets_per_fault})",
            )
        )
    if select is not None and select.percent is not None and select.percent > guards.max_percent:
        problems.append(
            loc.problem(
                ("method", i, "select", "percent"),
                f"percent {select.percent:g} is over guards.max_percent ({guards.max_percent:g})",
            )
        )
    return problems


def load_plan(path: Path) -> Plan:
    """Read, validate and check an experiment file; raises InvalidInputError listing every problem."""
    doc = load_document(path)
    experiment = validate_model(Experiment, doc)
    faults, problems = check(experiment, doc)
    if problems:
        raise InvalidInputError(sort_problems(problems))
    return Plan(experiment, doc, faults, (doc.path.resolve().parent / experiment.load.locustfile).resolve())
