"""The stack description reference stays true: generated from the models, examples valid, every key described."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

import chaos
import stackspec
from engine.errors import InvalidInputError
from engine.stack import read_description
from engine.stack_schema import EXAMPLES, stack_reference_markdown, stack_schema
from stackspec.targets import StackDescription

ROOT = Path(__file__).resolve().parents[2]


def _stackspec_models() -> list[type[BaseModel]]:
    """Every pydantic model defined in a stackspec module (restart.py and any later module included)."""
    models: list[type[BaseModel]] = []
    for info in pkgutil.iter_modules(stackspec.__path__):
        module = importlib.import_module(f"stackspec.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseModel) and cls.__module__ == module.__name__:
                models.append(cls)
    return models


def test_docs_stack_reference_is_generated_from_the_current_models() -> None:
    committed = (ROOT / "docs" / "stack-reference.md").read_text()
    assert committed == stack_reference_markdown(), (
        "run: python chaos.py schema --stack --markdown > docs/stack-reference.md"
    )


def test_every_model_field_has_a_description() -> None:
    models = _stackspec_models()
    names = {m.__name__ for m in models}
    assert {"StackDescription", "ProcessInstance", "ProcessMatch", "MarketHours"} <= names
    if (ROOT / "stackspec" / "restart.py").exists():
        assert "Restart" in names
    missing = [f"{m.__name__}.{key}" for m in models for key, field in m.model_fields.items() if not field.description]
    assert missing == [], f"add description= to: {', '.join(missing)}"


def test_every_key_in_the_schema_is_described_in_the_reference() -> None:
    schema = stack_schema()
    reference = stack_reference_markdown()
    for model in [schema, *schema["$defs"].values()]:
        assert model.get("description"), model.get("title")
        for key, prop in model.get("properties", {}).items():
            assert prop.get("description"), (model["title"], key)
            assert f"| `{key}` |" in reference, key
    assert set(schema["$defs"]) <= {line[4:] for line in reference.splitlines() if line.startswith("### ")}


@pytest.mark.parametrize("title", [title for title, _, _ in EXAMPLES])
def test_every_example_validates_as_a_stack_file(title: str, tmp_path: Path) -> None:
    document = next(doc for t, _, doc in EXAMPLES if t == title)
    StackDescription.model_validate(document)
    path = tmp_path / "stack.yaml"  # and as a user's file, through the loader the engine uses
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    read = read_description(path)
    assert read.name == document["name"]


def test_examples_cover_every_target_kind_and_the_documented_cases() -> None:
    documents = [doc for _, _, doc in EXAMPLES]
    parsed = [StackDescription.model_validate(doc) for doc in documents]
    kinds = {target.kind for desc in parsed for target in desc.targets.values()}
    assert kinds == {"process", "link", "container", "kubernetes"}
    instances = [
        i for desc in parsed for t in desc.targets.values() if t.kind == "process" for i in getattr(t, "instances", [])
    ]
    assert any(i.pid is not None for i in instances)
    assert any(i.match is not None and i.host is None for i in instances)
    assert any(i.host is not None for i in instances)
    assert any(desc.endpoints for desc in parsed)
    assert any(desc.audit is not None for desc in parsed)
    assert any(doc.get("market_hours", "absent") is None for doc in documents)
    assert any(desc.market_hours is not None for desc in parsed)


def test_an_http_health_check_must_be_an_http_url(tmp_path: Path) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(
        "name: web\nmarket_hours: null\ntargets:\n  web:\n    instances:\n"
        "      - name: web-1\n        argv: [/bin/true]\n        health: {http: '127.0.0.1:8080/health'}\n"
    )
    with pytest.raises(InvalidInputError) as caught:
        read_description(path)
    said = "\n".join(str(p) for p in caught.value.problems)
    assert str(path) in said and ":8:" in said
    assert "`http` must be an http(s) URL" in said and "'127.0.0.1:8080/health'" in said
    for good in ("http://127.0.0.1:8080/health", "https://web.example/health"):
        path.write_text(path.read_text().replace("'127.0.0.1:8080/health'", good))
        assert read_description(path).name == "web"
        path.write_text(path.read_text().replace(good, "'127.0.0.1:8080/health'"))


def test_schema_stack_command_prints_the_schema_and_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert chaos.main(["schema", "--stack"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["title"].startswith("Stack description") and "ProcessInstance" in printed["$defs"]
    assert chaos.main(["schema", "--stack", "--markdown"]) == 0
    assert capsys.readouterr().out == stack_reference_markdown()
    assert chaos.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"].startswith("Chaos experiment")
