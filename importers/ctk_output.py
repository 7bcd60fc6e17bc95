"""A converted experiment as YAML text with its conversion report as comments, validated by the engine's own
loader and plan checks (the same ones `engine.plan.load_plan` applies to a file)."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import yaml

from engine.errors import InvalidInputError, Problem
from engine.loader import LoadedDocument, parse_yaml, validate_model
from engine.model import Experiment
from engine.plan import Plan, check
from importers.ctk_document import CtkImportError, Decision

WIDTH = 116


def render(source: Path, experiment: dict[str, Any], decisions: list[Decision]) -> str:
    """The experiment file: a comment header naming every decision, then the YAML."""
    lines = [
        f"# Converted from the Chaos Toolkit experiment {source.name} by `chaos.py import ctk`",
        "# (docs/chaos-toolkit.md). Every mapping decision, by its place in that document:",
    ]
    for decision in decisions:
        wrapped = textwrap.wrap(str(decision), WIDTH - 6, break_long_words=False, break_on_hyphens=False)
        lines += [f"#   {wrapped[0]}", *(f"#     {more}" for more in wrapped[1:])]
    body = yaml.safe_dump(experiment, sort_keys=False, allow_unicode=True, default_flow_style=False, width=WIDTH)
    return "\n".join(lines) + "\n" + body


def _engine_problems(source: Path, text: str, problems: list[Problem]) -> CtkImportError:
    lines = text.splitlines()
    found = []
    for problem in problems:
        shown = lines[problem.line - 1].strip() if problem.line and problem.line <= len(lines) else ""
        where = f" (converted line {shown!r})" if shown else ""
        found.append(Problem(str(source), None, None, f"the converted experiment is refused{where}: {problem.message}"))
    return CtkImportError(found)


def validate(source: Path, source_text: str, text: str, document_path: Path) -> Plan:
    """The Plan of the converted text as if it were the file `document_path` (relative paths resolve from its
    directory); raises CtkImportError with the engine's problems, naming the source document."""
    try:
        data, locator, parse_problems = parse_yaml(text, str(document_path))
    except InvalidInputError as exc:
        raise _engine_problems(source, text, exc.problems) from None
    digest = hashlib.sha256(source_text.encode()).hexdigest()  # the journal names the file that was given
    doc = LoadedDocument(document_path, text, digest, data, locator, parse_problems)
    try:
        experiment = validate_model(Experiment, doc)
    except InvalidInputError as exc:
        raise _engine_problems(source, text, exc.problems) from None
    faults, problems = check(experiment, doc)
    if problems:
        raise _engine_problems(source, text, problems)
    return Plan(experiment, doc, faults, (doc.path.resolve().parent / experiment.load.locustfile).resolve())
