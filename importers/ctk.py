"""Chaos Toolkit experiments (JSON or YAML) converted into this framework's experiments, every choice reported.

Public API: is_ctk_document, convert (→ Conversion), load_ctk_plan (→ an engine Plan in memory), and
import_command for `chaos.py import ctk` (in cli.import_commands). Nothing of an imported document is ever
executed: activities are read, mapped onto fault kinds and probes, or refused with their location.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.durations import format_duration
from engine.errors import Problem
from engine.plan import Plan
from importers.ctk_activities import Activities, handle_controls
from importers.ctk_config import load_values, resolve
from importers.ctk_document import Context, CtkImportError, Decision, read_source, sniff
from importers.ctk_experiment import guards_section, load_section, objectives_section
from importers.ctk_items import Step
from importers.ctk_options import ConvertOptions
from importers.ctk_output import render, validate
from importers.ctk_targets import StackInfo, try_load_stack
from importers.ctk_timeline import Timeline, build_timeline

__all__ = [
    "Conversion",
    "ConvertOptions",
    "CtkImportError",
    "Decision",
    "convert",
    "import_command",
    "is_ctk_document",
    "load_ctk_plan",
]

_KNOWN_KEYS = {
    "version",
    "title",
    "description",
    "tags",
    "configuration",
    "secrets",
    "steady-state-hypothesis",
    "method",
    "rollbacks",
    "controls",
    "extensions",
    "contributions",
    "runtime",
    "dry",
}
_DURING = ("during-method-only", "continuously", "continuous")
PLACEHOLDER = "requests complete (the Chaos Toolkit experiment has no hypothesis to judge)"


@dataclass(frozen=True)
class Conversion:
    """A converted experiment: the mapping (as an experiment file holds it), its YAML with the report as
    comments, and every decision with its place in the Chaos Toolkit document."""

    source: Path
    experiment: dict[str, Any]
    yaml_text: str
    decisions: list[Decision]

    def report_lines(self) -> list[str]:
        faults, probes = len(self.experiment["method"]), len(self.experiment["steady_state"])
        head = f"Chaos Toolkit experiment {self.source} converted: {faults} fault(s), {probes} steady-state probe(s)"
        return [head, *(f"  {decision}" for decision in self.decisions)]


def is_ctk_document(path: Path) -> bool:
    """Whether `path` holds a Chaos Toolkit experiment (a cheap look at its content; never raises)."""
    return sniff(Path(path))


def _header(ctx: Context, options: ConvertOptions, values: Any) -> tuple[str, str, list[str]]:
    data = ctx.source.data
    title, ok = resolve(ctx, ("title",), data.get("title"), values)
    if not isinstance(title, str) or not title.strip():
        if ok:
            ctx.refuse(("title",), "an experiment needs a title")
        title = "untitled"
    description = data.get("description")
    if not isinstance(description, str):
        ctx.decide(("description",), "no description (Chaos Toolkit requires one): left empty")
        description = ""
    tags = data.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        ctx.refuse(("tags",), "tags must be a list of non-empty strings")
        tags = []
    ctx.decide(("tags",), "tag 'chaos-toolkit' added: the experiment came from there")
    for key in ("version", "contributions", "extensions"):
        if key in data:
            ctx.decide((key,), "informational only: not carried over")
    for key in data:
        if key not in _KNOWN_KEYS:
            ctx.decide((key,), "not a key of the Chaos Toolkit experiment format; ignored")
    if data.get("dry"):
        ctx.refuse(("dry",), "a dry experiment runs nothing; use `chaos.py run --dry-run` for a dry run here")
    if "controls" in data:
        handle_controls(ctx, ("controls",), data["controls"], options)
    return title.strip(), description.strip(), [*tags, "chaos-toolkit"]


def _strategy(ctx: Context) -> str:
    runtime = ctx.source.data.get("runtime")
    if not isinstance(runtime, dict):
        return "default"
    rollbacks = runtime.get("rollbacks")
    if isinstance(rollbacks, dict) and "strategy" in rollbacks:
        ctx.decide(
            ("runtime", "rollbacks", "strategy"),
            f"{rollbacks['strategy']!r}: every fault is rolled back "
            "and verified here, however the run ends (this framework's guarantee; 'never' is not honoured)",
        )
    hypothesis = runtime.get("hypothesis")
    strategy = str(hypothesis.get("strategy", "default")) if isinstance(hypothesis, dict) else "default"
    where = ("runtime", "hypothesis", "strategy")
    if strategy not in ("default", "before-method-only", "after-method-only", "skip", *_DURING):
        ctx.refuse(where, f"unknown hypothesis strategy {strategy!r}")
    elif strategy == "after-method-only":
        ctx.decide(
            where,
            "'after-method-only': the baseline is judged all the same — nothing is injected unless the "
            "steady state holds first (stricter)",
        )
    elif strategy == "skip":
        ctx.decide(where, "'skip': the hypothesis is not judged, as in Chaos Toolkit")
    return strategy


def _steady_state(ctx: Context, acts: Activities, strategy: str) -> list[dict[str, Any]]:
    hypothesis = ctx.source.data.get("steady-state-hypothesis")
    if hypothesis is None or strategy == "skip":
        return []
    if not isinstance(hypothesis, dict):
        ctx.refuse(("steady-state-hypothesis",), "the hypothesis must be a mapping with a title and probes")
        return []
    if not hypothesis.get("title"):
        ctx.refuse(("steady-state-hypothesis", "title"), "a steady-state hypothesis needs a title")
    if "controls" in hypothesis:
        handle_controls(ctx, ("steady-state-hypothesis", "controls"), hypothesis["controls"], acts.options)
    probes = hypothesis.get("probes") or []
    if not isinstance(probes, list):
        ctx.refuse(("steady-state-hypothesis", "probes"), "probes must be a list")
        return []
    found: list[dict[str, Any]] = []
    for index, activity in enumerate(probes):
        probe = acts.hypothesis_probe(("steady-state-hypothesis", "probes", index), activity)
        if probe is not None:
            found.append(probe)
    return found


def _steps(ctx: Context, acts: Activities, key: str) -> list[Step]:
    entries = ctx.source.data.get(key)
    if key == "method" and entries is None:
        ctx.refuse((), "the experiment has no method: Chaos Toolkit needs one, and so does a fault timeline")
        return []
    if entries is None:
        return []
    if not isinstance(entries, list):
        ctx.refuse((key,), f"{key} must be a list of activities")
        return []
    steps = [acts.step((key, index), activity, rollback=key == "rollbacks") for index, activity in enumerate(entries)]
    return [step for step in steps if step is not None]


def _unique(ctx: Context, probes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    for probe in probes:
        name = probe["name"]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            probe["name"] = f"{name} #{seen[name]}"
            ctx.decide(("steady-state-hypothesis",), f"probe name {name!r} repeats: renamed {probe['name']!r}")
    return probes


def _stack_of(path: Path, options: ConvertOptions, base: Path) -> StackInfo:
    if options.problems():
        raise CtkImportError([Problem(str(path), None, None, f"option: {text}") for text in options.problems()])
    stack, message, stack_error = try_load_stack(options.stack, base)
    if stack_error is not None:
        raise CtkImportError(stack_error.problems)
    if stack is None:
        raise CtkImportError([Problem(str(path), None, None, f"option --stack: {message}")])
    return stack


def _judged_probes(
    ctx: Context, probes: list[dict[str, Any]], strategy: str, timeline: Timeline
) -> list[dict[str, Any]]:
    """The steady state: the hypothesis' probes (over the fault windows too, by strategy) and the method's checks."""
    if strategy in _DURING:
        for probe in probes:
            probe["during"] = {"max": 0.0}
        ctx.decide(
            ("runtime", "hypothesis", "strategy"),
            f"{strategy!r}: the HTTP probes are also judged over each "
            "fault window, every sample (Chaos Toolkit samples them on its own frequency)",
        )
    probes = _unique(ctx, [*probes, *(check.probe for check in timeline.checks)])
    if not probes:
        probes = [{"name": PLACEHOLDER, "metric": "error_rate", "max": 1.0}]
        ctx.decide(
            ("steady-state-hypothesis",),
            "no hypothesis to judge (Chaos Toolkit only explores then): the "
            "steady state is a placeholder that always holds (error_rate at most 1); rollbacks, their "
            "verification and the integrity checks still apply",
        )
    return probes


def _method(timeline: Timeline) -> list[dict[str, Any]]:
    method = []
    for fault in sorted(timeline.faults, key=lambda f: f.at):
        step: dict[str, Any] = {
            "name": fault.name,
            "at": format_duration(round(fault.at, 3)),
            "duration": format_duration(round(fault.duration, 3)),
            "kind": fault.item.kind,
            "target": fault.item.target,
        }
        if fault.item.select is not None:
            step["select"] = fault.item.select
        if fault.item.params:
            step["params"] = fault.item.params
        method.append(step)
    return method


def _convert(path: Path, options: ConvertOptions) -> tuple[Conversion, Plan]:
    path = Path(path)
    source = read_source(path)
    ctx = Context(source)
    document_path = (options.out or path).resolve()
    base = document_path.parent
    stack = _stack_of(path, options, base)
    values = load_values(ctx, options)
    title, description, tags = _header(ctx, options, values)
    strategy = _strategy(ctx)
    acts = Activities(ctx, values, options, stack)
    probes = _steady_state(ctx, acts, strategy)
    method_steps = _steps(ctx, acts, "method")
    rollback_steps = _steps(ctx, acts, "rollbacks")
    ctx.raise_problems()
    timeline = build_timeline(ctx, method_steps, rollback_steps, options)
    if not timeline.faults:
        ctx.refuse(("method",), "no activity of the method maps onto a fault: there is nothing to inject")
    ctx.raise_problems()
    judged = bool(probes)
    probes = _judged_probes(ctx, probes, strategy, timeline)
    method = _method(timeline)
    experiment: dict[str, Any] = {
        "version": 1,
        "title": title,
        "description": description,
        "tags": tags,
        "stack": stack.ref,
        "load": load_section(ctx, options, stack, probes, base, timeline),
        "steady_state": probes,
        "method": method,
        **guards_section(ctx, timeline, method),
        **objectives_section(ctx, timeline, judged, strategy),
        "recovery": {"stable_for": format_duration(options.stable_for_s)},
    }
    ctx.decide(
        (),
        "integrity: this framework's default checks run after recovery (all built-in ones on the "
        "reference stack); Chaos Toolkit has none",
    )
    ctx.raise_problems()
    decisions = ctx.ordered_decisions()
    text = render(path, experiment, decisions)
    plan = validate(path, source.text, text, document_path)
    return Conversion(path, experiment, text, decisions), plan


def convert(path: Path, options: ConvertOptions | None = None) -> Conversion:
    """Convert a Chaos Toolkit experiment; the result is validated as `chaos.py validate` would validate it
    (relative paths as seen from `options.out`, else from the document's directory).

    Raises CtkImportError (exit 2) with every problem, each with the document path and line where known.
    """
    return _convert(path, options or ConvertOptions())[0]


def load_ctk_plan(path: Path, options: ConvertOptions | None = None) -> tuple[Plan, list[str]]:
    """A Chaos Toolkit file as an engine Plan in memory (nothing written), with the conversion report's lines
    for the journal. Relative paths resolve from the document's directory; the plan's document is the file."""
    conversion, plan = _convert(path, dataclasses.replace(options or ConvertOptions(), out=None))
    return plan, conversion.report_lines()


def import_command(args: Any, stdout: Any = None, stderr: Any = None) -> int:
    """`chaos.py import ctk`: see cli.import_commands.import_command (imported here lazily: it imports this module)."""
    from cli.import_commands import import_command as run_import

    return run_import(args, stdout, stderr)
