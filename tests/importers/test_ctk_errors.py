"""Bad Chaos Toolkit input: each problem named with its file, line and document path; exit 2; nothing written."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest

from cli.import_commands import add_import_parser
from importers.ctk import CtkImportError, convert, import_command
from tests.importers.ctk_support import KILL_MATCHER_1, converted, decisions, document, probe, refused, write

BROKEN_JSON = """{
  "title": "t",
  "description": "d",
  "method": [
    {"type": "action", "name": "a" "provider": {}}
  ]
}
"""
BROKEN_YAML = """title: t
description: d
method:
  - type: action
    name: a
   provider: {type: process}
"""


def test_malformed_json_is_refused_with_file_line_and_column(tmp_path: Path) -> None:
    (problem,) = refused(tmp_path, BROKEN_JSON)
    assert problem.endswith("experiment.json:5:36: JSON syntax error: Expecting ',' delimiter")


def test_malformed_yaml_is_refused_with_file_and_line(tmp_path: Path) -> None:
    (problem,) = refused(tmp_path, BROKEN_YAML, name="experiment.yaml")
    assert "experiment.yaml:6:" in problem and "YAML syntax error" in problem


def test_json_with_tabs_is_still_located_by_line(tmp_path: Path) -> None:
    text = '{\n\t"title": "t",\n\t"description": "d",\n\t"method": [\n\t\t{"type": "actoin", "name": "a"}\n\t]\n}\n'
    (problem,) = refused(tmp_path, text)
    assert "experiment.json:5:" in problem and "method[0].type: activity type 'actoin'" in problem


def test_duplicate_keys_are_refused_where_they_repeat(tmp_path: Path) -> None:
    text = '{\n  "title": "t",\n  "title": "u",\n  "method": []\n}\n'
    (problem,) = refused(tmp_path, text)
    assert "experiment.json:3:3: duplicate key 'title' (first defined on line 2)" in problem


@pytest.mark.parametrize(("text", "found"), [("[1, 2]", "list"), ("null", "nothing"), ('"text"', "str")])
def test_a_document_that_is_no_mapping_is_refused(tmp_path: Path, text: str, found: str) -> None:
    (problem,) = refused(tmp_path, text)
    assert f"expected an experiment (a mapping) at the top, found {found}" in problem


def test_a_document_without_method_is_refused(tmp_path: Path) -> None:
    doc = document()
    del doc["method"]
    (problem,) = refused(tmp_path, doc)
    assert "experiment.json:1:1: (document): the experiment has no method" in problem


def test_a_method_with_nothing_to_inject_is_refused(tmp_path: Path) -> None:
    problems = refused(tmp_path, document(method=[]))
    assert any("method: no activity of the method maps onto a fault" in p for p in problems)


def _activity(provider: dict[str, Any], kind: str = "action", name: str = "x") -> dict[str, Any]:
    return {"type": kind, "name": name, "provider": provider}


@pytest.mark.parametrize(
    ("activity", "where", "reason"),
    [
        (_activity({"type": "grpc", "target": "x"}), "method[2].provider.type", "unknown provider type 'grpc'"),
        (_activity({"path": "kill"}), "method[2].provider.type", "unknown provider type None"),
        ({"type": "action", "name": "x"}, "method[2].provider", "an activity needs a provider"),
        ({"type": "step", "name": "x", "provider": {"type": "http"}}, "method[2].type", "activity type 'step'"),
        (_activity({"type": "http", "url": "http://127.0.0.1:8080/"}, name=""), "method[2].name", "needs a name"),
        ({"ref": "nowhere"}, "method[2].ref", "referenced activity 'nowhere' is not defined"),
        (
            _activity({"type": "python", "module": "chaosaws.ec2.actions", "func": "stop_instances"}),
            "method[2].provider.module",
            "python provider chaosaws.ec2.actions.stop_instances has no mapping onto this framework",
        ),
        (
            _activity({"type": "http", "url": "http://127.0.0.1:8080/admin", "method": "POST"}),
            "method[2].provider.type",
            "an HTTP action changes the system",
        ),
        (
            _activity({"type": "process", "path": "pgrep", "arguments": "x"}, kind="probe"),
            "method[2].provider.type",
            "a process probe runs a program",
        ),
        (
            {**_activity({"type": "process", "path": "pkill", "arguments": "-9 -f gateway"}), "dry": True},
            "method[2].dry",
            "a dry activity is not run",
        ),
        (
            {
                **_activity({"type": "process", "path": "pkill", "arguments": "-9 -f gateway"}),
                "pauses": {"after": "soon"},
            },
            "method[2].pauses.after",
            "a pause must be a number of seconds, got 'soon'",
        ),
        (
            {**_activity({"type": "process", "path": "pkill", "arguments": "-9 -f gateway"}), "background": "yes"},
            "method[2].background",
            "background must be true or false",
        ),
    ],
)
def test_bad_activities_are_named_by_their_path_and_line(
    tmp_path: Path, activity: dict[str, Any], where: str, reason: str
) -> None:
    noop = _activity({"type": "process", "path": "echo", "arguments": "hi"})
    problems = refused(tmp_path, document(method=[KILL_MATCHER_1, noop, activity]))
    hits = [p for p in problems if f": {where}: " in p and reason in p]
    assert hits, problems
    assert hits[0].split(":")[1].isdigit()  # file:LINE:col


def test_prometheus_and_kubernetes_probes_in_the_hypothesis_are_refused(tmp_path: Path) -> None:
    prometheus = {
        "type": "probe",
        "name": "p99",
        "tolerance": {"type": "range", "range": [0, 0.25]},
        "provider": {
            "type": "python",
            "module": "chaosprometheus.probes",
            "func": "query",
            "arguments": {"query": "histogram_quantile(0.99, rate(x[1m]))"},
        },
    }
    pods = {
        "type": "probe",
        "name": "pods",
        "tolerance": True,
        "provider": {"type": "python", "module": "chaosk8s.probes", "func": "all_microservices_healthy"},
    }
    problems = refused(tmp_path, document([probe(200), prometheus, pods]))
    assert any(
        "steady-state-hypothesis.probes[1].provider.module: chaosprometheus.probes.query: Prometheus probes "
        "have no equivalent here yet" in p
        for p in problems
    ), problems
    assert any(
        "steady-state-hypothesis.probes[2].provider.module: chaosk8s.probes.all_microservices_healthy reads "
        "Kubernetes state" in p
        for p in problems
    ), problems


def test_a_prometheus_probe_in_the_method_is_reported_not_run(tmp_path: Path) -> None:
    query = _activity(
        {"type": "python", "module": "chaosprometheus.probes", "func": "query", "arguments": {"query": "up"}},
        kind="probe",
    )
    conversion = converted(tmp_path, document(method=[KILL_MATCHER_1, query]))
    assert any("method[1]" in d and "a Prometheus probe in the method" in d for d in decisions(conversion))


def test_controls_are_refused_unless_dropped_knowingly(tmp_path: Path) -> None:
    controls = [{"name": "safeguards", "provider": {"type": "python", "module": "chaosaddons.controls.safeguards"}}]
    (problem,) = refused(tmp_path, document(controls=controls))
    assert "controls: controls ('safeguards') run code around the experiment" in problem
    conversion = converted(tmp_path, document(controls=controls), ignore_controls=True)
    assert any("dropped by option --ignore-controls" in d for d in decisions(conversion))


def test_a_rollback_that_does_something_else_is_refused_unless_declared_subsumed(tmp_path: Path) -> None:
    restart = _activity({"type": "process", "path": "systemctl", "arguments": "start matcher@1"}, name="restart")
    problems = refused(tmp_path, document(rollbacks=[restart]))
    assert any("rollbacks[0].provider: the process provider runs 'systemctl'" in p for p in problems)
    assert any(
        "rollbacks[0]: if this rollback only undoes" in p and "--subsumed-rollback 'restart'" in p for p in problems
    )
    conversion = converted(tmp_path, document(rollbacks=[restart]), subsumed_rollbacks=frozenset({"restart"}))
    assert any("declared undone by the automatic rollbacks" in d for d in decisions(conversion))


def test_a_rollback_that_kills_is_refused(tmp_path: Path) -> None:
    kill = _activity({"type": "process", "path": "pkill", "arguments": "-9 -f gateway"})
    problems = refused(tmp_path, document(rollbacks=[kill]))
    assert any(
        "rollbacks[0].provider: a rollback that sends SIGKILL does something the automatic rollbacks do not" in p
        for p in problems
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    doc = document([probe([200, 503])], method=[_activity({"type": "grpc"}), _activity({"type": "http", "url": "x"})])
    problems = refused(tmp_path, doc)
    assert len(problems) == 3, problems


def test_the_import_command_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, document([probe({"type": "regex", "pattern": "ok", "target": "body"})]))
    out = tmp_path / "out.yaml"
    parser = argparse.ArgumentParser(prog="chaos.py")
    add_import_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["import", "ctk", str(path), "-o", str(out)])
    stdout, stderr = io.StringIO(), io.StringIO()
    assert import_command(args, stdout, stderr) == 2
    assert not out.exists() and stdout.getvalue() == ""
    lines = stderr.getvalue().splitlines()
    assert "steady-state-hypothesis.probes[0].tolerance.type: a regex tolerance" in lines[0]
    assert lines[-1] == f"{path}: not converted (1 problem(s)); nothing written"


def test_a_missing_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CtkImportError, match="no such file"):
        convert(tmp_path / "missing.json")
    (tmp_path / "latin1.json").write_bytes(b'{"title": "caf\xe9"}')
    with pytest.raises(CtkImportError, match="not valid UTF-8"):
        convert(tmp_path / "latin1.json")
