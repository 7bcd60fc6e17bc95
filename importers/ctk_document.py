"""Reading a Chaos Toolkit experiment (JSON or YAML): its values, where each one is, and what was decided or refused."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InvalidInputError, Problem
from engine.files import LIMITS, InputFileError, read_bytes
from engine.loader import Locator, parse_yaml, sort_problems

Loc = tuple[str | int, ...]
WHAT = "a Chaos Toolkit experiment (JSON or YAML)"


class CtkImportError(InvalidInputError):
    """A Chaos Toolkit experiment that cannot be converted; every problem names its file, line and document path."""


def dotted(loc: Sequence[str | int]) -> str:
    """A document path as people write it: ('method', 2, 'provider', 'module') → 'method[2].provider.module'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(document)"


@dataclass(frozen=True)
class Decision:
    """One mapping choice the conversion made, at the place in the Chaos Toolkit document it concerns."""

    path: str
    line: int | None
    text: str

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line is not None else self.path
        return f"{where}: {self.text}"


@dataclass
class Source:
    """A parsed Chaos Toolkit document; `locator` is None when positions could not be recovered."""

    path: Path
    text: str
    data: dict[str, Any]
    locator: Locator | None

    def line(self, loc: Sequence[str | int]) -> tuple[int | None, int | None]:
        if self.locator is None:
            return None, None
        return self.locator.position(loc)


@dataclass
class Context:
    """What a conversion collects while it walks the document: refusals (problems) and decisions."""

    source: Source
    problems: list[Problem] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def refuse(self, loc: Sequence[str | int], message: str) -> None:
        line, column = self.source.line(loc)
        problem = Problem(str(self.source.path), line, column, f"{dotted(loc)}: {message}")
        if problem not in self.problems:  # a referenced activity is read once per reference
            self.problems.append(problem)

    def decide(self, loc: Sequence[str | int], text: str) -> None:
        decision = Decision(dotted(loc), self.source.line(loc)[0] if loc else None, text)
        if decision not in self.decisions:  # a referenced activity is read once per reference
            self.decisions.append(decision)

    def ordered_decisions(self) -> list[Decision]:
        """The decisions in document order (stable: those of one place keep the order they were made in)."""
        return sorted(self.decisions, key=lambda d: d.line or 0)

    def raise_problems(self) -> None:
        if self.problems:
            raise CtkImportError(sort_problems(self.problems))


def portable_path(path: Path, base: Path) -> str:
    """`path` relative to `base` when it lies in `base`'s folder or below (as experiment files write the
    paths of their neighbours), else absolute: a path climbing out of the folder would break as soon as
    the two are copied apart."""
    path, base = path.resolve(), base.resolve()
    if not path.is_relative_to(base):
        return str(path)
    return str(path.relative_to(base))


def _decode(raw: bytes, name: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        raise CtkImportError([Problem(name, line, column, message)]) from None
    return text.removeprefix("\ufeff")


def _is_json(path: Path, text: str) -> bool:
    if path.suffix.lower() == ".json":
        return True
    if path.suffix.lower() in (".yaml", ".yml"):
        return False
    return text.lstrip().startswith("{")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(text: str, name: str) -> tuple[Any, Locator | None, list[Problem]]:
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                duplicates.append(key)
                continue  # keep the first, as the YAML reader does; either way it is refused below
            result[key] = value
        return result

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise CtkImportError([Problem(name, exc.lineno, exc.colno, f"JSON syntax error: {exc.msg}")]) from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply to read" if isinstance(exc, RecursionError) else str(exc)
        raise CtkImportError([Problem(name, None, None, f"JSON error: {reason}")]) from None
    # JSON is YAML: reading the same text as YAML gives every value's line (and the duplicate keys' lines).
    # YAML refuses tabs where JSON allows them as white space; a space in their place keeps every position.
    try:
        _, locator, problems = parse_yaml(text.replace("\t", " "), name)
    except InvalidInputError:
        locator, problems = None, [Problem(name, None, None, f"duplicate key {key!r}") for key in duplicates]
    return data, locator, problems


def read_source(path: Path) -> Source:
    """Read and parse a Chaos Toolkit document; raises CtkImportError with file:line for what cannot be read."""
    name = str(path)
    try:
        raw = read_bytes(path, LIMITS["experiment"], WHAT)
    except InputFileError as exc:
        raise CtkImportError([Problem(name, None, None, exc.reason)]) from None
    text = _decode(raw, name)
    if _is_json(path, text):
        data, locator, problems = _parse_json(text, name)
    else:
        try:
            data, located, problems = parse_yaml(text, name)
        except InvalidInputError as exc:
            raise CtkImportError(exc.problems) from None
        locator = located
    if problems:
        raise CtkImportError(sort_problems(problems))
    if not isinstance(data, dict):
        found = "nothing" if data is None else type(data).__name__
        raise CtkImportError([Problem(name, 1, 1, f"expected an experiment (a mapping) at the top, found {found}")])
    return Source(path, text, data, locator)


def sniff(path: Path) -> bool:
    """Whether a file looks like a Chaos Toolkit experiment, from its content (never raises)."""
    try:
        text = _decode(read_bytes(path, LIMITS["experiment"], WHAT), str(path))
    except (InvalidInputError, InputFileError, OSError):
        return False
    try:
        data: Any = json.loads(text) if _is_json(path, text) else parse_yaml(text, str(path))[0]
    except (ValueError, InvalidInputError, RecursionError):
        # Unreadable: still ours to explain when it names the one key only Chaos Toolkit experiments have.
        return "steady-state-hypothesis" in text and "method" in text
    if not isinstance(data, dict) or "method" not in data:
        return False
    version = data.get("version")
    if type(version) is int and version == 1:
        return False  # this framework's own format
    if "load" in data or "steady_state" in data:
        return False
    return "steady-state-hypothesis" in data or "title" in data
