"""The experiment file's JSON Schema (for editors) and its Markdown reference."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from engine.durations import PATTERN as DURATION_PATTERN
from engine.durations import format_duration
from engine.model import Experiment
from injectors.registry import all_kinds


def _durations_as_strings(node: Any) -> None:
    """Durations are validated to seconds, but a file must spell them with a unit: fix the defaults."""
    if isinstance(node, dict):
        if node.get("pattern") == DURATION_PATTERN and isinstance(node.get("default"), int | float):
            node["default"] = format_duration(float(node["default"]))
        for value in node.values():
            _durations_as_strings(value)
    elif isinstance(node, list):
        for value in node:
            _durations_as_strings(value)


def experiment_schema() -> dict[str, Any]:
    """JSON Schema of an experiment file, with each fault kind's `params` schema attached by kind."""
    schema = Experiment.model_json_schema()
    defs = schema.setdefault("$defs", {})
    branches = []
    for kind, injector in all_kinds().items():
        spec_schema = injector.spec_type.model_json_schema()
        name = injector.spec_type.__name__
        defs.update(spec_schema.pop("$defs", {}))
        defs[name] = spec_schema
        branches.append(
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"properties": {"params": {"$ref": f"#/$defs/{name}"}}},
            }
        )
    step = defs["FaultStep"]
    step["properties"]["kind"]["enum"] = list(all_kinds())
    step["allOf"] = branches
    _durations_as_strings(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Chaos experiment (version 1)"
    return schema


def _type_of(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "enum" in prop:
        return " \\| ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop or "oneOf" in prop:
        return " \\| ".join(_type_of(p) for p in prop.get("anyOf", prop.get("oneOf", [])))
    if prop.get("type") == "array":
        return f"list of {_type_of(prop.get('items', {}))}"
    if prop.get("type") == "string" and "pattern" in prop and "examples" in prop:
        return "duration"
    return str(prop.get("type", "any"))


def _section(name: str, model: dict[str, Any], type_of: Callable[[dict[str, Any]], str] = _type_of) -> list[str]:
    """One model as a Markdown heading, its description and a table of its keys."""
    lines = [f"### {name}", ""]
    if model.get("description"):
        lines += [" ".join(model["description"].split()), ""]
    props = model.get("properties", {})
    if not props:
        return lines
    required = set(model.get("required", []))
    lines += ["| key | type | required | default | description |", "|---|---|---|---|---|"]
    for key, prop in props.items():
        default = json.dumps(prop["default"]) if "default" in prop else ""
        desc = " ".join(str(prop.get("description", "")).split())
        bounds = [
            f"{word} {prop[k]}"
            for k, word in (
                ("minimum", "≥"),
                ("exclusiveMinimum", ">"),
                ("maximum", "≤"),
                ("exclusiveMaximum", "<"),
            )
            if k in prop
        ]
        if bounds:
            desc = (desc + " (" + ", ".join(bounds) + ")").strip()
        lines.append(f"| `{key}` | {type_of(prop)} | {'yes' if key in required else ''} | {default} | {desc} |")
    return [*lines, ""]


markdown_section = _section  # the stack reference (engine.stack_schema) renders its models the same way
type_of = _type_of


def reference_markdown() -> str:
    """The experiment file reference, generated from the schema (a test keeps the docs copy in sync)."""
    schema = experiment_schema()
    defs = schema["$defs"]
    lines = [
        "# Experiment file reference (version 1)",
        "",
        "Generated from the schema by `chaos.py schema --markdown`; do not edit by hand.",
        "Durations are strings with a unit: `500ms`, `30s`, `2m`, `1h`, `1m30s`.",
        "Unknown keys are errors everywhere. `chaos.py schema` prints the JSON Schema for editors.",
        "",
        *_section("Experiment (top level)", schema),
    ]
    kinds = all_kinds()
    spec_names = {injector.spec_type.__name__ for injector in kinds.values()}
    for name in sorted(defs):
        if name not in spec_names:
            lines += _section(name, defs[name])
    lines += ["## Fault kinds and their `params`", ""]
    for kind, injector in kinds.items():
        lines += _section(f"`{kind}`", {**defs[injector.spec_type.__name__], "description": injector.summary})
    return "\n".join(lines).rstrip() + "\n"
