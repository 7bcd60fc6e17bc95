"""Experiment files → models: every problem as file:line:col, nothing silently accepted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.errors import InvalidInputError
from engine.loader import MAX_FILE_BYTES, load_document
from engine.plan import load_plan

GOOD = """\
version: 1
title: ok
load:
  locustfile: lf.py
  users: 5
  spawn_rate: 5
  duration: 30s
steady_state:
  - name: errors
    metric: error_rate
    max: 0.01
method:
  - at: 10s
    duration: 5s
    kind: process.kill
    target: matcher
"""


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    (tmp_path / "lf.py").write_text("# locustfile\n")
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(InvalidInputError) as info:
        load_plan(path)
    return [str(p) for p in info.value.problems]


def test_good_file_loads(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD))
    assert plan.experiment.load.duration == 30.0
    assert [f.step.kind for f in plan.faults] == ["process.kill"]
    assert plan.locustfile == (tmp_path / "lf.py").resolve()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  users: 5", "  users: 0", ":5:10: load.users: Input should be greater than or equal to 1"),
        ("  users: 5", "  users: many", ":5:10: load.users: Input should be a valid integer"),
        ("  duration: 30s", "  duration: 30", ":7:13: load.duration: expected a duration with a unit"),
        ("  duration: 30s", "  duration: 0s", ":7:13: load.duration: Input should be greater than 0"),
        ("    max: 0.01", "    max: 0.01\n    maxx: 1", ":12:5: unknown key 'maxx'"),
        ("    metric: error_rate", "    metric: error_rat", ":10:13: steady_state.0.metric: Input should be"),
        (
            "    kind: process.kill",
            "    kind: process.kil",
            ":15:11: unknown fault kind 'process.kil'; did you mean 'process.kill'?",
        ),
        ("    target: matcher", "    target: matchr", ":16:13: unknown target 'matchr'; did you mean 'matcher'?"),
        ("  - at: 10s", "  - at: 6500ms", ":13:9: fault starts at 6.5s: the baseline needs at least 2s"),
        ("    duration: 5s\n", "    duration: 25s\n", ":14:15: fault ends at 35s, but the load lasts 30s"),
        ("  locustfile: lf.py", "  locustfile: missing.py", ":4:15: locustfile 'missing.py' not found"),
        ("version: 1", "version: 2", ":1:10: unsupported version 2: this tool reads version 1"),
        ("title: ok\n", "", ":1:1: missing required key 'title'"),
        ("    target: matcher", "    target: matcher\n    params: {signal: SIGHUP}", ":17:22: method.0.params.signal"),
        (
            "    target: matcher",
            "    target: matcher\n    select: {count: 1, all: true}",
            ":17:13: method.0.select: choose at most one",
        ),
    ],
)
def test_problems_point_at_the_line(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    found = problems(path)
    assert any(p.startswith(str(path)) and expected in p for p in found), found


def test_duplicate_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  users: 5\n", "  users: 5\n  users: 6\n"))
    assert f"{path}:6:3: duplicate key 'users' (first defined on line 5)" in problems(path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("  users: 5", "  users: 0").replace("    max: 0.01", "    max: 0.01\n    nope: 1")
    assert len(problems(write(tmp_path, text))) == 2


def test_tabs_are_explained(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ntitle: x\n\tload: {}\n")
    (only,) = problems(path)
    assert only.startswith(f"{path}:3:1: YAML syntax error") and "not tabs" in only


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\ntitle: [unclosed\nload: 1\n")
    (only,) = problems(path)
    assert only.startswith(f"{path}:3:") and "YAML syntax error" in only


def test_non_utf8_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\ntitle: caf\xe9\n")
    (only,) = problems(path)
    assert only == f"{path}:2:11: not valid UTF-8 (byte 0xe9); save the file as UTF-8"


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "the file is empty"), ("- a\n- b\n", "expected a mapping at the top of the file, found list")],
)
def test_empty_or_wrong_top_level(tmp_path: Path, content: str, message: str) -> None:
    path = write(tmp_path, content)
    assert any(message in p for p in problems(path))


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("# " + "x" * MAX_FILE_BYTES)
    (only,) = problems(path)
    assert "the limit is" in only


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: no such file"]
    assert problems(tmp_path) == [f"{tmp_path}: is a directory, expected a YAML file"]


def test_merge_keys_and_anchors_keep_positions(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path, "base: &b {users: 1}\nload:\n  <<: *b\n  spawn_rate: 2\n"))
    assert doc.data["load"] == {"users": 1, "spawn_rate": 2}
    assert doc.locator.position(("load", "spawn_rate")) == (4, 15)
