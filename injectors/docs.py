"""The params tables of docs/injectors.md, generated from each kind's params model (tests/test_docs.py checks them).

    python -m injectors.docs              print docs/injectors.md with every table regenerated
    python -m injectors.docs --write      regenerate the tables in docs/injectors.md in place
    python -m injectors.docs --check      exit 1 (naming the file) when a table is stale or missing
    python -m injectors.docs --kind KIND  print one kind's table (a plugin's too), for its own docs

A table sits between `<!-- params: KIND -->` and `<!-- /params -->`; everything else in the file is
hand-written prose. A table's rows are the model's fields — name, type, default, description (with its
bounds) — so a change to a field shows in the docs only through the model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from injectors.base import FaultSpec
from injectors.registry import all_kinds, get_injector

CATALOGUE = Path(__file__).resolve().parents[1] / "docs" / "injectors.md"
BLOCK = re.compile(r"<!-- params: (?P<kind>[a-z0-9_.]+) -->\n.*?<!-- /params -->", re.DOTALL)
END = "<!-- /params -->"
_BOUNDS = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
_TYPES = {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean", "null": "none"}


def _branches(prop: dict[str, Any]) -> list[dict[str, Any]]:
    return list(prop.get("anyOf") or prop.get("oneOf") or [prop])


def _type_of(prop: dict[str, Any]) -> str:
    names = []
    for branch in _branches(prop):
        if "enum" in branch:
            names += [f"`{json.dumps(value)}`" for value in branch["enum"]]
        elif "const" in branch:
            names.append(f"`{json.dumps(branch['const'])}`")
        else:
            names.append(_TYPES.get(str(branch.get("type")), str(branch.get("type", "any"))))
    return " \\| ".join(names)


def _default_of(name: str, prop: dict[str, Any], required: set[str]) -> str:
    if name in required:
        return "required"
    if "default" not in prop and prop.get("type") in ("array", "object"):  # a default_factory: a new empty one
        return "`[]`" if prop["type"] == "array" else "`{}`"
    default = prop.get("default")
    return "none" if default is None else f"`{json.dumps(default, ensure_ascii=False)}`"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) or not float(value).is_integer() else str(int(value))


def _description_of(prop: dict[str, Any]) -> str:
    text = " ".join(str(prop.get("description", "")).split())
    bounds = [f"{sign} {_number(branch[key])}" for branch in _branches(prop) for key, sign in _BOUNDS if key in branch]
    if bounds:
        stop = "." if text.endswith(".") else ""
        text = f"{text.removesuffix('.')} ({', '.join(bounds)}){stop}".strip()
    return text.replace("|", "\\|")


def params_table(spec: type[FaultSpec]) -> str:
    """The Markdown table of a params model: one row per field, in the model's order."""
    schema = spec.model_json_schema()
    required = set(schema.get("required", []))
    rows = ["| param | type | default | description |", "|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        rows.append(f"| `{name}` | {_type_of(prop)} | {_default_of(name, prop, required)} | {_description_of(prop)} |")
    if len(rows) == 2:
        rows = ["No params."]
    return "\n".join(rows)


def block(kind: str) -> str:
    """A kind's generated table with its markers, as it stands in the catalogue."""
    return f"<!-- params: {kind} -->\n{params_table(get_injector(kind).spec_type)}\n{END}"


def render(text: str) -> str:
    """`text` with every params table regenerated from the current models."""
    return BLOCK.sub(lambda match: block(match["kind"]), text)


def missing(text: str) -> list[str]:
    """The built-in kinds that have no table in `text` (plugins document themselves)."""
    present = {match["kind"] for match in BLOCK.finditer(text)}
    builtin = [kind for kind, cls in all_kinds().items() if cls.__module__.startswith(f"{__package__}.")]
    return [kind for kind in builtin if kind not in present]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m injectors.docs", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"rewrite {CATALOGUE.name} in place")
    action.add_argument("--check", action="store_true", help="exit 1 when a table is stale or missing")
    action.add_argument("--kind", help="print the params table of one kind")
    args = parser.parse_args(argv)
    if args.kind:
        print(block(args.kind))
        return 0
    text = CATALOGUE.read_text()
    fresh = render(text)
    if args.check:
        stale, absent = fresh != text, missing(text)
        if stale or absent:
            why = "stale tables" if stale else f"no table for {', '.join(absent)}"
            print(f"{CATALOGUE}: {why}; run: python -m injectors.docs --write", file=sys.stderr)
            return 1
        return 0
    if args.write:
        CATALOGUE.write_text(fresh)
    else:
        sys.stdout.write(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
