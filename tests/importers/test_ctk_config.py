"""Configuration (literal, env with defaults and types, variables), `${name}` substitution, and secrets by env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from importers.ctk_config import references, substitute
from tests.importers.ctk_support import KILL_MATCHER_1, converted, decisions, document, probe, refused

URL_FROM_CONFIG = probe(200, url="${base}/health")


def _url(conversion: Any) -> str:
    return str(conversion.experiment["steady_state"][0]["http"]["url"])


def _fault(conversion: Any) -> dict[str, Any]:
    (fault,) = conversion.experiment["method"]
    return dict(fault)


def test_an_env_entry_takes_the_variable_when_it_is_set(tmp_path: Path) -> None:
    doc = document([URL_FROM_CONFIG], configuration={"base": {"type": "env", "key": "BASE", "default": "http://x"}})
    conversion = converted(tmp_path, doc, environ={"BASE": "http://127.0.0.1:8080"})
    assert _url(conversion) == "{gateway}/health"
    assert any("configuration.base" in d and "from $BASE (set at conversion time)" in d for d in decisions(conversion))


def test_an_env_entry_falls_back_to_its_default(tmp_path: Path) -> None:
    doc = document(
        [URL_FROM_CONFIG], configuration={"base": {"type": "env", "key": "BASE", "default": "http://127.0.0.1:8080"}}
    )
    conversion = converted(tmp_path, doc, environ={})
    assert _url(conversion) == "{gateway}/health"
    assert any("to its default 'http://127.0.0.1:8080' ($BASE is not set)" in d for d in decisions(conversion))


def test_an_env_entry_without_default_whose_variable_is_unset_is_refused_at_its_line(tmp_path: Path) -> None:
    doc = document([URL_FROM_CONFIG], configuration={"base": {"type": "env", "key": "BASE"}})
    (problem,) = refused(tmp_path, doc, environ={})
    lines = (tmp_path / "experiment.json").read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if '"key": "BASE"' in text)
    assert f"experiment.json:{line}:" in problem
    assert ": configuration.base.key: environment variable BASE is not set and the entry has no default" in problem
    assert "--var base=VALUE" in problem


def test_env_var_type_converts_the_value_and_a_pause_uses_it_with_its_type(tmp_path: Path) -> None:
    action = {**KILL_MATCHER_1, "pauses": {"after": "${settle}"}}
    doc = document(method=[action], configuration={"settle": {"type": "env", "key": "SETTLE", "env_var_type": "int"}})
    conversion = converted(tmp_path, doc, environ={"SETTLE": "12"})
    assert conversion.experiment["objectives"]["rto"] == "12s"  # the pause after the kill, as a number
    (problem,) = refused(tmp_path, doc, environ={"SETTLE": "soon"})
    assert "configuration.settle.env_var_type: cannot convert SETTLE" in problem


def test_a_variable_overrides_the_document_and_stands_in_for_dynamic_configuration(tmp_path: Path) -> None:
    dynamic = {"type": "probe", "name": "ask", "provider": {"type": "python", "module": "x", "func": "y"}}
    doc = document([URL_FROM_CONFIG], configuration={"base": dynamic})
    (problem,) = refused(tmp_path, doc)
    assert "configuration.base.type: dynamic configuration runs an activity" in problem
    conversion = converted(tmp_path, doc, variables={"base": "http://127.0.0.1:8080"})
    assert _url(conversion) == "{gateway}/health"
    assert any("given as a variable at conversion" in d for d in decisions(conversion))


def test_secrets_by_env_are_never_read_nor_written(tmp_path: Path) -> None:
    secrets = {"ops": {"token": {"type": "env", "key": "OPS_TOKEN"}, "inline": "hunter2-inline"}}
    conversion = converted(tmp_path, document(secrets=secrets), environ={"OPS_TOKEN": "s3cr3t-value"})
    assert "s3cr3t-value" not in conversion.yaml_text and "hunter2-inline" not in conversion.yaml_text
    assert any("secrets.ops.token" in d and "secret from $OPS_TOKEN: not read" in d for d in decisions(conversion))


def test_a_secret_used_where_it_would_be_written_is_refused(tmp_path: Path) -> None:
    secrets = {"ops": {"token": {"type": "env", "key": "OPS_TOKEN"}}}
    doc = document([probe(200, url="http://127.0.0.1:8080/health?token=${token}")], secrets=secrets)
    (problem,) = refused(tmp_path, doc, environ={"OPS_TOKEN": "s3cr3t-value"})
    assert "steady-state-hypothesis.probes[0].provider: refers to the secret ${token} (secrets.ops)" in problem
    assert "s3cr3t-value" not in problem


def test_a_name_nothing_defines_is_refused_where_it_is_used(tmp_path: Path) -> None:
    (problem,) = refused(tmp_path, document([probe(200, url="${nowhere}/health")]))
    assert "steady-state-hypothesis.probes[0].provider: ${nowhere} is not defined in the configuration" in problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${port}", 8080),  # a value that is only a reference keeps its type
        ("$port", 8080),
        ("http://h:${port}/x", "http://h:8080/x"),
        ("cost $$5 at $host", "cost $5 at h"),
        (["${port}", {"k": "${host}"}], [8080, {"k": "h"}]),
        ("${unknown}", "${unknown}"),  # left as it is, as Chaos Toolkit leaves it
        ("kill $(pgrep x)", "kill $(pgrep x)"),
    ],
)
def test_substitution(value: Any, expected: Any) -> None:
    assert substitute(value, {"port": 8080, "host": "h"}) == expected


def test_references_lists_every_name() -> None:
    assert references({"a": "${x}/$y", "b": ["$$z", "${w}"]}) == ["x", "y", "w"]
