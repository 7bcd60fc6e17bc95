"""The JSON Schema and the generated experiment reference stay true to the models and the registry."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from engine.durations import parse_duration
from engine.schema import experiment_schema, reference_markdown
from injectors.registry import all_kinds

ROOT = Path(__file__).resolve().parents[2]


def test_docs_reference_is_generated_from_the_current_schema() -> None:
    committed = (ROOT / "docs" / "experiment-reference.md").read_text()
    assert committed == reference_markdown(), "run: python chaos.py schema --markdown > docs/experiment-reference.md"


def test_schema_lists_every_kind_with_its_params() -> None:
    schema = experiment_schema()
    step = schema["$defs"]["FaultStep"]
    assert step["properties"]["kind"]["enum"] == list(all_kinds())
    branches = {
        b["if"]["properties"]["kind"]["const"]: b["then"]["properties"]["params"]["$ref"] for b in step["allOf"]
    }
    for kind, injector in all_kinds().items():
        name = branches[kind].rsplit("/", 1)[-1]
        assert schema["$defs"][name]["additionalProperties"] is False
        assert name == injector.spec_type.__name__
    json.dumps(schema)  # serialisable for `chaos.py schema`


def test_duration_defaults_are_spelled_as_in_files() -> None:
    warmup = experiment_schema()["$defs"]["LoadSpec"]["properties"]["warmup"]
    assert warmup["default"] == "5s" and parse_duration(warmup["default"]) == 5.0


def test_every_shipped_experiment_validates() -> None:
    from engine.plan import load_plan

    files = sorted((ROOT / "experiments").glob("*.yaml"))
    assert files
    for path in files:
        plan = load_plan(path)
        assert plan.faults, path
        assert yaml.safe_load(path.read_text())["version"] == 1
