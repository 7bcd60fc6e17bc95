"""YAML files → validated models, with every problem reported as file:line:col.

PyYAML composes the node tree (which keeps source positions); we build plain Python values from
it ourselves so that each value remembers where it came from, duplicate keys are refused instead of
silently overwritten, and pydantic error locations can be mapped back to lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from engine.errors import InvalidInputError, Problem
from engine.files import LIMITS, InputFileError, read_bytes

MAX_FILE_BYTES = LIMITS["experiment"]  # experiments and drills; stack descriptions: LIMITS["stack"]
# Aliases let a tiny file expand into millions of values ("billion laughs"); experiments are small.
MAX_VALUES = 50_000

Loc = tuple[str | int, ...]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass
class Locator:
    """Source positions (1-based line, column) of every key and value in a YAML document."""

    file: str
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: Sequence[str | int], prefer_key: bool = False) -> tuple[int | None, int | None]:
        """Best position for a location: the value (or key), else the nearest enclosing one."""
        path = tuple(loc)
        while True:
            tables = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            for table in tables:
                if path in table:
                    return table[path]
            if not path:
                return None, None
            path = path[:-1]

    def problem(self, loc: Sequence[str | int], message: str, prefer_key: bool = False) -> Problem:
        line, column = self.position(loc, prefer_key)
        return Problem(self.file, line, column, message)


@dataclass
class LoadedDocument:
    path: Path
    text: str
    sha256: str
    data: Any
    locator: Locator
    problems: list[Problem] = field(default_factory=list)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


_PLAIN_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, locator: Locator) -> None:
        self.loader = loader
        self.locator = locator
        self.problems: list[Problem] = []
        self.built = 0
        self._open: set[int] = set()  # nodes being built: an alias to one of them is a cycle

    def build(self, node: yaml.Node, path: Loc) -> Any:
        self.built += 1
        if self.built > MAX_VALUES:
            line, col = _mark(node)
            raise InvalidInputError(
                [Problem(self.locator.file, line, col, f"more than {MAX_VALUES:,} values: aliases expand too far")]
            )
        if id(node) in self._open:
            line, col = _mark(node)
            raise InvalidInputError([Problem(self.locator.file, line, col, "an alias refers to itself (a cycle)")])
        self._open.add(id(node))
        try:
            return self._build(node, path)
        finally:
            self._open.discard(id(node))

    def _build(self, node: yaml.Node, path: Loc) -> Any:
        self.locator.values.setdefault(path, _mark(node))
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
            line, col = _mark(node)
            self.problems.append(
                Problem(self.locator.file, line, col, f"could not determine a constructor for the tag {node.tag!r}")
            )
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves '<<' merge keys
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | float | bool) or key is None:
                    line, col = _mark(key_node)
                    self.problems.append(Problem(self.locator.file, line, col, "mapping keys must be plain scalars"))
                    continue
                key = str(key)
                if key in result:
                    line, col = _mark(key_node)
                    first = self.locator.keys.get((*path, key), (None, None))[0]
                    self.problems.append(
                        Problem(
                            self.locator.file,
                            line,
                            col,
                            f"duplicate key {key!r} (first defined on line {first})",
                        )
                    )
                    continue
                self.locator.keys[(*path, key)] = _mark(key_node)
                result[key] = self.build(value_node, (*path, key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """Read an input file as UTF-8, refusing non-regular (FIFO, device), unreadable, huge or non-UTF-8 files."""
    name = str(path)
    try:
        raw = read_bytes(path, limit, "a YAML file")
    except InputFileError as exc:
        raise InvalidInputError([Problem(name, None, None, exc.reason)]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[line_start : exc.start].decode("utf-8", errors="replace")) + 1  # in characters
        raise InvalidInputError(
            [
                Problem(
                    name,
                    line,
                    column,
                    f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
                )
            ]
        ) from None


def parse_yaml(text: str, name: str) -> tuple[Any, Locator, list[Problem]]:
    """Parse one YAML document keeping positions; raises InvalidInputError on a syntax error.

    Duplicate keys are returned as problems (the first value is kept) so validation can go on and
    report everything else in the same pass.
    """
    locator = Locator(name)
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            raise InvalidInputError([Problem(name, 1, 1, "the file is empty")])
        builder = _Builder(loader, locator)
        data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        # Point at where the construct began (an unclosed quote, bracket) when PyYAML knows it.
        unclosed = exc.context and exc.problem and "end of stream" in exc.problem
        opened = exc.context_mark if unclosed and exc.context_mark is not None else None
        mark = opened or exc.problem_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = exc.problem or "invalid YAML"
        if opened is not None and exc.problem_mark is not None:
            reason = f"{exc.context} that is never closed ({reason} at line {exc.problem_mark.line + 1})"
        if "\t" in reason or "\\t" in reason or "tab" in reason.lower():
            reason += " (YAML indentation must use spaces, not tabs)"
        raise InvalidInputError([Problem(name, line, column, f"YAML syntax error: {reason}")]) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        message = f"character {exc.character!r} is not allowed in YAML (control characters must be escaped)"
        raise InvalidInputError([Problem(name, line, column, message)]) from None
    except yaml.YAMLError as exc:
        raise InvalidInputError([Problem(name, None, None, f"YAML error: {exc}")]) from None
    except RecursionError:
        line, column = _deepest(text)
        raise InvalidInputError([Problem(name, line, column, "nested too deeply to read (nest less)")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, locator, builder.problems


def _deepest(text: str, limit: int = 100) -> tuple[int | None, int | None]:
    """Where brackets first nest deeper than `limit` (PyYAML's recursion error has no position)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for column, char in enumerate(line, start=1):
            depth += 1 if char in "[{" else -1 if char in "]}" else 0
            if depth > limit:
                return number, column
    return None, None


def load_document(path: Path, limit: int = MAX_FILE_BYTES) -> LoadedDocument:
    """Read and parse one YAML file of at most `limit` bytes (problems located as file:line:col)."""
    text = read_text(path, limit)
    data, locator, problems = parse_yaml(text, str(path))
    return LoadedDocument(path, text, hashlib.sha256(text.encode()).hexdigest(), data, locator, problems)


# What a field's pattern means, for messages people can act on (instead of the regular expression).
_PATTERN_MEANS = {
    "url": "an http(s) URL with a host (or {endpoint}/path), without spaces",
    "host": "a stack endpoint name or an http(s) URL with a host",
}


def _message(error: Any) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "literal_error" and loc and loc[-1] == "version":
        return f"unsupported version {error.get('input')!r}: this tool reads version 1"
    field = ".".join(str(part) for part in loc)
    if kind == "string_pattern_mismatch" and loc and str(loc[-1]) in _PATTERN_MEANS:
        msg = f"{error.get('input')!r} is not {_PATTERN_MEANS[str(loc[-1])]}"
    return f"{field}: {msg}" if field else msg


def _clean_loc(loc: Iterable[Any]) -> Loc:
    # Drop the discriminator tags pydantic inserts for tagged unions ('metric', 'http' for probes; integrity entries).
    parts = list(loc)
    cleaned: list[str | int] = []
    for index, part in enumerate(parts):
        if part in ("metric", "http", "by_name", "configured") and index > 0 and isinstance(parts[index - 1], int):
            continue
        if part in ("process", "link") and index > 1 and parts[index - 2] == "targets":
            continue  # the target kinds of a stack description
        cleaned.append(part)
    return tuple(cleaned)


def problems_from_validation(exc: ValidationError, locator: Locator, prefix: Loc = ()) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = (*prefix, *_clean_loc(error["loc"]))
        shown = dict(error, loc=loc)
        prefer_key = error["type"] == "extra_forbidden"
        problems.append(locator.problem(loc, _message(shown), prefer_key=prefer_key))
    return problems


def validate_model(model: type[ModelT], doc: LoadedDocument) -> ModelT:
    """Validate a loaded document against `model`; raises InvalidInputError with every located problem."""
    if not isinstance(doc.data, dict):
        found = type(doc.data).__name__
        raise InvalidInputError(
            [
                *doc.problems,
                doc.locator.problem((), f"expected a mapping at the top of the file, found {found}"),
            ]
        )
    try:
        result = model.model_validate(doc.data)
    except ValidationError as exc:
        raise InvalidInputError(sort_problems([*doc.problems, *problems_from_validation(exc, doc.locator)])) from None
    if doc.problems:
        raise InvalidInputError(doc.problems)
    return result


def sort_problems(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
