"""The docs stay true: exit-code table, the two README commands, the injector catalogue and its params tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import ExitCode
from injectors import docs as injector_docs
from injectors.registry import all_kinds

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_exit_code_table_is_the_code_table() -> None:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", README, flags=re.MULTILINE)
    assert [(int(code), text) for code, text in rows] == list(ExitCode.TABLE)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert "bash scripts/test.sh" in README
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["bash scripts/test.sh"]


def test_every_injector_kind_is_in_the_catalogue() -> None:
    catalogue = (ROOT / "docs" / "injectors.md").read_text()
    for kind, injector in all_kinds().items():
        assert f"`{kind}`" in catalogue, kind
        for param in injector.spec_type.model_fields:
            assert f"`{param}`" in catalogue, (kind, param)


def test_injector_params_tables_are_generated_from_the_params_models() -> None:
    catalogue = (ROOT / "docs" / "injectors.md").read_text()
    assert not injector_docs.missing(catalogue), "add `<!-- params: KIND -->` / `<!-- /params -->` to docs/injectors.md"
    assert catalogue == injector_docs.render(catalogue), "run: python -m injectors.docs --write"


def test_the_params_tables_say_type_default_bounds_and_what_is_required() -> None:
    table = injector_docs.block("network.latency").splitlines()
    assert table[1] == "| param | type | default | description |"
    assert "| `latency_ms` | integer | required | Added delay per chunk of data (> 0). |" in table
    assert "| `toxicity` | number | `1.0` | Probability the toxic applies to a connection (≥ 0, ≤ 1). |" in table
    grace = next(row for row in injector_docs.block("pod.delete").splitlines() if "`grace_period_s`" in row)
    assert grace.startswith("| `grace_period_s` | integer \\| none | none |")


def test_the_injector_docs_tool_checks_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert injector_docs.main(["--check"]) == 0
    assert injector_docs.main(["--kind", "process.kill"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("<!-- params: process.kill -->\n| param |") and "`signal`" in printed


def test_every_toxic_and_attribute_of_the_embedded_server_is_documented() -> None:
    from chaosproxy.toxics import Toxic

    doc = (ROOT / "docs" / "toxiproxy-server.md").read_text()
    for type_name, toxic in Toxic.registry.items():
        (row,) = [line for line in doc.splitlines() if line.startswith(f"| `{type_name}` |")]
        for attribute in toxic.attribute_names:
            assert f"`{attribute}`" in row, (type_name, attribute)
    assert "docs/toxiproxy-server.md" in README
