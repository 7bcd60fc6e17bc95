"""The live overlay of a user's stack file: restarted PIDs survive edits of anything but the instance itself."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.model import StackRef
from engine.stack import LiveStack, open_stack
from stackspec.targets import ProcessTarget

STACK = """\
name: mine
market_hours: null
targets:
  web:
    instances:
      - name: web-1
        pid: 11
        argv: [sleep, "60"]
        env: {DB_PASSWORD: hunter2-secret}
      - name: web-2
        argv: [sleep, "61"]
"""


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    """A real process standing in for the restarted instance: its PID is what the overlay keeps."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=5)


def _open(directory: Path) -> LiveStack:
    return open_stack(StackRef(file="stack.yaml"), directory, directory)


def _pids(stack: LiveStack) -> dict[str, int | None]:
    group = stack.description.targets["web"]
    assert isinstance(group, ProcessTarget)
    return {i.name: i.pid for i in group.instances}


def _restart(directory: Path, name: str, pid: int) -> None:
    """What a rollback does after restarting `name`: record its new PID through the live stack."""
    stack = _open(directory)
    group = stack.description.targets["web"]
    assert isinstance(group, ProcessTarget)
    old = next(i for i in group.instances if i.name == name)
    stack.replace_instance("web", old.model_copy(update={"pid": pid, "start_time": 4242}))


def test_editing_another_instance_keeps_the_live_pid(tmp_path: Path, live_process: subprocess.Popen[bytes]) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(STACK)
    _restart(tmp_path, "web-1", live_process.pid)
    assert stack_file.read_text() == STACK  # the user's file is never rewritten
    overlay = tmp_path / "stack.yaml.live.json"
    assert "hunter2-secret" not in overlay.read_text() and overlay.stat().st_mode & 0o077 == 0
    assert _pids(_open(tmp_path)) == {"web-1": live_process.pid, "web-2": None}
    # The user edits web-2, adds a comment and a top-level key: web-1's live PID stays.
    edited = STACK.replace('argv: [sleep, "61"]', 'argv: [sleep, "62"]\n        log: /tmp/web-2.log')
    stack_file.write_text(
        "# edited by hand\n" + edited.replace("market_hours: null\n", "market_hours: null\ntrading: true\n")
    )
    stack = _open(tmp_path)
    assert _pids(stack) == {"web-1": live_process.pid, "web-2": None}
    assert stack.description.trading is True
    # A later restart of web-2 is recorded beside web-1's, which is kept.
    _restart(tmp_path, "web-2", 77)
    assert _pids(_open(tmp_path)) == {"web-1": live_process.pid, "web-2": 77}


def test_editing_this_instance_drops_its_live_pid(tmp_path: Path, live_process: subprocess.Popen[bytes]) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(STACK)
    _restart(tmp_path, "web-1", live_process.pid)
    _restart(tmp_path, "web-2", 77)
    stack_file.write_text(STACK.replace('argv: [sleep, "60"]', 'argv: [sleep, "600"]'))
    assert _pids(_open(tmp_path)) == {"web-1": 11, "web-2": 77}  # what the user wrote wins for web-1 only
    stack_file.write_text(STACK.replace("pid: 11", "pid: 12"))  # editing just its PID is an edit too
    assert _pids(_open(tmp_path))["web-1"] == 12
    # Back to exactly what it was recorded against (no run recorded since): the live PID applies again.
    stack_file.write_text(STACK)
    assert _pids(_open(tmp_path))["web-1"] == live_process.pid


@pytest.mark.parametrize(
    "overlay",
    [
        "not json {",
        "[]",
        '{"format": 2}',
        '{"format": 9, "instances": {}, "written": {}}',
        '{"format": 2, "instances": {"web": {"web-1": {"pid": "1234", "start_time": null}}}, "written": "x"}',
        '{"format": 2, "instances": {"web": [1]}, "written": {"web": {"web-1": 5}}}',
        '{"format": 2, "instances": {"web": {"web-1": {"pid": true, "start_time": 1}}}, "written": {"web": {}}}',
        '{"stack_sha256": "0000", "instances": {"web": {"web-1": {"pid": 99, "start_time": 1}}}}',
    ],
)
def test_a_corrupt_or_stale_overlay_is_ignored(tmp_path: Path, overlay: str) -> None:
    (tmp_path / "stack.yaml").write_text(STACK)
    (tmp_path / "stack.yaml.live.json").write_text(overlay)
    assert _pids(_open(tmp_path)) == {"web-1": 11, "web-2": None}
    _restart(tmp_path, "web-2", 78)  # and the next restart replaces it with a good one
    assert json.loads((tmp_path / "stack.yaml.live.json").read_text())["format"] == 2
    assert _pids(_open(tmp_path)) == {"web-1": 11, "web-2": 78}


def test_an_overlay_of_format_1_holds_while_the_file_is_unchanged(tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(STACK)
    old = {
        "stack_sha256": hashlib.sha256(STACK.encode()).hexdigest(),
        "instances": {"web": {"web-1": {"pid": 99, "start_time": 1}}},
    }
    (tmp_path / "stack.yaml.live.json").write_text(json.dumps(old))
    assert _pids(_open(tmp_path))["web-1"] == 99
    _restart(tmp_path, "web-2", 79)  # migrated to format 2 on the next record, web-1 kept
    stack_file.write_text(STACK.replace('argv: [sleep, "61"]', 'argv: [sleep, "62"]'))
    assert _pids(_open(tmp_path)) == {"web-1": 99, "web-2": None}
