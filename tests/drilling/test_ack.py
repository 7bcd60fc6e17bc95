"""Acknowledgements: the inbox file, live drills, and the loopback page with its token (real HTTP)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from drilling.ack import ACK_FILE, AckInbox, append_ack, live_drills, write_live
from drilling.ack_page import AckServer


def test_inbox_reads_each_acknowledgement_once_and_waits_for_whole_lines(tmp_path: Path) -> None:
    inbox = AckInbox(tmp_path)
    assert inbox.read_new() == []
    append_ack(tmp_path, "brief", "alice", "cli")
    with (tmp_path / ACK_FILE).open("a") as handle:
        handle.write('{"step": "half')  # a writer still writing
    assert [(a.step, a.by, a.source) for a in inbox.read_new()] == [("brief", "alice", "cli")]
    with (tmp_path / ACK_FILE).open("a") as handle:
        handle.write('", "by": "bob", "t": 1.0}\nnot json\n')
    assert [a.step for a in inbox.read_new()] == ["half"]
    assert inbox.read_new() == []


def test_live_drills_are_those_whose_process_lives(tmp_path: Path) -> None:
    mine = tmp_path / "drills" / "run-1"
    mine.mkdir(parents=True)
    write_live(mine, "d", "run-1", "http://127.0.0.1:1")
    dead = tmp_path / "drills" / "run-0"
    dead.mkdir()
    (dead / "live.json").write_text(json.dumps({"pid": 2**22 + 12345, "drill_name": "d", "drill_run_id": "run-0"}))
    (found,) = live_drills(tmp_path)
    assert (found.pid, found.drill_run_id, found.drill_dir) == (os.getpid(), "run-1", mine)


def request(url: str, data: dict[str, str] | None = None) -> tuple[int, Any]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(url, data=body, timeout=5) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


@pytest.fixture
def server(tmp_path: Path) -> Any:
    state = {"phase": "faults", "steps": [{"id": "brief", "mode": "manual", "status": "pending"}]}

    def accept(step: str) -> str | None:
        return None if step == "brief" else f"no step {step!r}"

    srv = AckServer(tmp_path, "Title <b>", "name", lambda: state, accept)
    srv.start()
    yield srv
    srv.stop()


def test_the_page_needs_its_token(server: AckServer) -> None:
    assert server.url.startswith("http://127.0.0.1:") and "token=" in server.url
    assert request(server.base_url + "/")[0] == 403
    assert request(server.base_url + "/state?token=wrong")[0] == 403
    status, page = request(server.url)
    assert status == 200 and "Title &lt;b&gt;" in page and "acknowledge" in page
    status, state = request(f"{server.base_url}/state?token={server.token}")
    assert status == 200 and state["phase"] == "faults"


def test_posting_an_acknowledgement_appends_it(server: AckServer, tmp_path: Path) -> None:
    assert request(server.base_url + "/ack", {"step": "brief", "by": "eve"})[0] == 403
    status, answer = request(server.base_url + "/ack", {"step": "nope", "by": "eve", "token": server.token})
    assert status == 409 and "no step 'nope'" in answer["message"]
    status, answer = request(server.base_url + "/ack", {"step": "brief", "by": "eve", "token": server.token})
    assert status == 200 and "acknowledged by eve" in answer["message"]
    (ack,) = AckInbox(tmp_path).read_new()
    assert (ack.step, ack.by, ack.source) == ("brief", "eve", "web")


def post(url: str, body: bytes, content_type: str) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_page_takes_json_and_refuses_bad_or_large_bodies(server: AckServer, tmp_path: Path) -> None:
    url = server.base_url + "/ack"
    body = json.dumps({"step": "brief", "by": "zoe", "token": server.token}).encode()
    assert post(url, body, "application/json") == (200, {"message": "step 'brief' acknowledged by zoe"})
    assert post(url, b"[1, 2]", "application/json") == (400, {"message": "invalid JSON"})
    assert post(url, b"x" * 5000, "application/x-www-form-urlencoded")[0] == 413
    assert post(server.base_url + "/elsewhere", body, "application/json")[0] == 404
    assert request(f"{server.base_url}/nothing?token={server.token}")[0] == 404
    assert [a.by for a in AckInbox(tmp_path).read_new()] == ["zoe"]
