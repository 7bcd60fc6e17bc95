"""The docs stay true: exit-code table, the two README commands, the injector catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from engine.errors import ExitCode
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


def test_every_toxic_and_attribute_of_the_embedded_server_is_documented() -> None:
    from chaosproxy.toxics import Toxic

    doc = (ROOT / "docs" / "toxiproxy-server.md").read_text()
    for type_name, toxic in Toxic.registry.items():
        (row,) = [line for line in doc.splitlines() if line.startswith(f"| `{type_name}` |")]
        for attribute in toxic.attribute_names:
            assert f"`{attribute}`" in row, (type_name, attribute)
    assert "docs/toxiproxy-server.md" in README
