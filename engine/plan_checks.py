"""The cross-field rules of an experiment, one function per section: each returns the problems it finds.

engine.plan.check runs them in the file's order (load, steady state, abort conditions, then each fault:
timing, guards, kind, target and params, then integrity), and every problem points at its own line.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import ValidationError

from engine.durations import format_duration
from engine.errors import Problem
from engine.integrity import get_check
from engine.loader import Loc, Locator, problems_from_validation
from engine.model import Experiment, FaultStep, HttpProbe, PrometheusProbe
from engine.probes import render_url
from injectors.base import FaultSpec, Injector
from injectors.registry import UnknownKindError, get_injector


def check_load(experiment: Experiment, base_dir: Path, endpoints: set[str] | None, loc: Locator) -> list[Problem]:
    """The locustfile exists, the warmup leaves a baseline, and the host is one of the stack's endpoints."""
    load = experiment.load
    problems: list[Problem] = []
    if not (base_dir / load.locustfile).resolve().is_file():
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
    return problems


def check_steady_state(
    experiment: Experiment, endpoints: set[str] | None, loc: Locator
) -> tuple[list[Problem], dict[str, int]]:
    """Probe names are unique and HTTP probes name known endpoints; also returns name → first position."""
    problems: list[Problem] = []
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
        if isinstance(probe, HttpProbe | PrometheusProbe) and endpoints is not None:
            key = "http" if isinstance(probe, HttpProbe) else "prometheus"
            url = probe.http.url if isinstance(probe, HttpProbe) else probe.prometheus.url
            problems += _check_url(url, ("steady_state", i, key, "url"), endpoints, loc)
    return problems, seen


def _check_url(url: str, where: Loc, endpoints: set[str], loc: Locator) -> list[Problem]:
    """A URL's leading {name} is one of the stack's endpoints."""
    try:
        render_url(url, dict.fromkeys(endpoints, "http://x"))
    except KeyError as exc:
        known = ", ".join(sorted(endpoints))
        return [loc.problem(where, f"unknown endpoint {{{exc.args[0]}}} in url (known: {known})")]
    return []


def check_abort_conditions(
    experiment: Experiment, probes: dict[str, int], loc: Locator, endpoints: set[str] | None = None
) -> list[Problem]:
    """A condition that watches a probe names one of the steady state's `probes`; a PromQL one a known endpoint."""
    problems: list[Problem] = []
    for i, condition in enumerate(experiment.abort_when):
        if condition.prometheus is not None and endpoints is not None:
            problems += _check_url(condition.prometheus.url, ("abort_when", i, "prometheus", "url"), endpoints, loc)
        if condition.probe is not None and condition.probe not in probes:
            close = difflib.get_close_matches(condition.probe, list(probes), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"probes are: {', '.join(probes) or 'none'}"
            problems.append(
                loc.problem(("abort_when", i, "probe"), f"no steady-state probe named {condition.probe!r}; {hint}")
            )
    return problems


def check_timing(experiment: Experiment, i: int, loc: Locator) -> list[Problem]:
    """Fault `i` starts after a judgeable baseline and ends early enough for the recovery to be observed."""
    load, step, tail = experiment.load, experiment.method[i], experiment.recovery.stable_for
    problems: list[Problem] = []
    if step.at < load.warmup + 2.0:
        problems.append(
            loc.problem(
                ("method", i, "at"),
                f"fault starts at {format_duration(step.at)}: the baseline needs at least 2s of load "
                f"after the {format_duration(load.warmup)} warmup to be judged before any fault",
            )
        )
    latest_end = load.duration - tail
    if step.at + step.duration > latest_end:
        problems.append(
            loc.problem(
                ("method", i, "duration"),
                f"fault ends at {format_duration(step.at + step.duration)}, but the load lasts "
                f"{format_duration(load.duration)}: end faults by {format_duration(max(latest_end, 0))} "
                f"so recovery ({format_duration(tail)}) can be observed",
            )
        )
    return problems


def check_guards(experiment: Experiment, i: int, loc: Locator) -> list[Problem]:
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


def bind_fault(
    step: FaultStep, where: Loc, targets: dict[str, str] | None, loc: Locator
) -> tuple[tuple[type[Injector[FaultSpec]], FaultSpec] | None, list[Problem]]:
    """The step's injector and typed params (None when either is unusable), and the problems with its target,
    kind, params and select; `targets` (name → kind) are the stack's, when known before the run."""
    problems: list[Problem] = []
    if targets is not None and step.target not in targets:
        close = difflib.get_close_matches(step.target, sorted(targets), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the stack has: {', '.join(sorted(targets))}"
        problems.append(loc.problem((*where, "target"), f"unknown target {step.target!r}; {hint}"))
    try:
        injector = get_injector(step.kind)
    except UnknownKindError as exc:
        return None, [*problems, loc.problem((*where, "kind"), str(exc))]
    target_kind = targets.get(step.target) if targets is not None else None
    if target_kind is not None and target_kind not in injector.target_kinds:
        wanted = " or ".join(injector.target_kinds)
        problems.append(
            loc.problem((*where, "target"), f"{step.kind} acts on {wanted} targets; {step.target!r} is a {target_kind}")
        )
    try:
        spec = injector.parse_params(step.params)
    except ValidationError as exc:
        return None, [*problems, *problems_from_validation(exc, loc, prefix=(*where, "params"))]
    if step.select is not None and not injector.selectable:
        problems.append(loc.problem((*where, "select"), f"{step.kind} chooses its own targets; remove `select`"))
    for param, name in injector.referenced_targets(spec).items():
        if targets is not None and name not in targets:
            problems.append(
                loc.problem(
                    (*where, "params", param) if param in step.params else (*where, "target"),
                    f"params.{param} names target {name!r}, which the stack does not have "
                    f"(it has: {', '.join(sorted(targets))})",
                )
            )
    return (injector, spec), problems


def check_integrity(experiment: Experiment, loc: Locator, endpoints: set[str] | None = None) -> list[Problem]:
    """Every check listed under `integrity:` is a known one; a lookup URL's {endpoint} is the stack's."""
    problems: list[Problem] = []
    for position, name in enumerate(experiment.integrity or []):
        if not isinstance(name, str):  # a configured check (engine.integrity_spec), validated by its model
            if name.endpoint is not None and endpoints is not None and name.endpoint not in endpoints:
                known = ", ".join(sorted(endpoints)) or "none"
                message = f"unknown endpoint {{{name.endpoint}}} in url (known: {known})"
                problems.append(loc.problem(("integrity", position, "url"), message))
            continue
        try:
            get_check(name)
        except KeyError as exc:
            problems.append(loc.problem(("integrity", position), str(exc.args[0])))
    return problems
