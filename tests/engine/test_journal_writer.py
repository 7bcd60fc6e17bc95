"""The incremental journal: every event appended to journal.events.jsonl, the whole journal rewritten at the
boundaries, and a reader that sees every event appended — after a crash at any point, a torn last line and all."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from engine.eventlog import log_path
from engine.events import Event, Noted
from engine.journal import EventRecord, Journal, load_journal, redacted_dict, save_journal
from engine.runner import Runner
from engine.writer import RESERVE_FILE, SNAPSHOT_EVENTS, JournalWriter
from tests.engine.fakes import run_fake

ONE_FAULT = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher}\n"


def journal(run_id: str = "r1") -> Journal:
    return Journal(
        run_id=run_id,
        tool_version="test",
        experiment_title="t",
        experiment_file="exp.yaml",
        experiment_sha256="0" * 64,
        experiment={},
        seed=1,
        started_at=1000.0,
    )


def add(j: Journal, *types: str) -> None:
    for kind in types:
        j.events.append(EventRecord(t=1000.0 + len(j.events), type=kind, message=f"{kind} #{len(j.events) + 1}"))


def messages(j: Journal) -> list[str]:
    return [e.message for e in j.events]


def test_events_appended_after_the_last_snapshot_are_read_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "run" / "journal.json"
    writer = JournalWriter(path, reserve_bytes=0)
    j = journal()
    add(j, "run_started", "phase_started")
    assert writer.event_added(j)  # a boundary: journal.json written whole
    add(j, "note", "probe_observed", "note")
    for _ in range(3):
        assert writer.append(j)  # nothing new after the first: nothing written twice
    # The runner is killed here: journal.json has 2 events, the log all 5.
    assert len(json.loads(path.read_text())["events"]) == 2
    assert [json.loads(line)["n"] for line in log_path(path).read_text().splitlines()] == [1, 2, 3, 4, 5]
    assert messages(load_journal(path)) == [
        f"{t} #{i}" for i, t in enumerate(["run_started", "phase_started", "note", "probe_observed", "note"], start=1)
    ]
    assert writer.failure is None


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    writer = JournalWriter(path, reserve_bytes=0)
    j = journal()
    add(j, "run_started")
    writer.event_added(j)
    add(j, "note")
    writer.event_added(j)
    with log_path(path).open("ab") as log:
        log.write(b'{"run":"r1","n":3,"t":1002.0,"type":"note","mess')  # killed mid-line
    assert messages(load_journal(path)) == ["run_started #1", "note #2"]


def test_an_append_that_fails_mid_line_is_retried_whole_and_read_once(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    calls = {"n": 0}

    def half_then_full(target: Path, data: bytes) -> None:
        calls["n"] += 1
        with target.open("ab") as log:
            if calls["n"] == 2:  # the disk fills in the middle of the second write
                log.write(data[: len(data) // 2])
                raise OSError(errno.EIO, "Input/output error")
            log.write(data)

    writer = JournalWriter(path, reserve_bytes=0, append=half_then_full)
    j = journal()
    add(j, "run_started")
    assert writer.event_added(j)
    add(j, "note")
    assert not writer.append(j)  # never raises: False, and the failure is kept
    assert writer.failure is not None and "Input/output error" in writer.failure
    add(j, "note")
    assert writer.append(j)  # the failed event comes again, with the new one
    assert messages(load_journal(path)) == ["run_started #1", "note #2", "note #3"]


def test_a_full_disk_on_append_uses_the_reserve_and_still_records_the_event(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    full = {"left": 1}

    def append(target: Path, data: bytes) -> None:
        if full["left"]:
            full["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        with target.open("ab") as log:
            log.write(data)

    writer = JournalWriter(path, reserve_bytes=1024, append=append)
    writer.set_aside()
    assert (tmp_path / RESERVE_FILE).exists()
    j = journal()
    add(j, "note")
    assert writer.append(j)
    assert not (tmp_path / RESERVE_FILE).exists()
    assert writer.failure is not None and "the reserve was used" in writer.failure


def test_a_log_that_cannot_be_created_fails_without_raising(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    writer = JournalWriter(tmp_path / "file" / "journal.json", stream=open(os.devnull, "w"))  # noqa: SIM115
    j = journal()
    add(j, "note")
    assert not writer.append(j)
    assert not writer.finish(j)
    assert writer.failure is not None and writer.failure.startswith(f"cannot write {tmp_path / 'file'}")


def test_lines_of_another_run_or_already_in_the_snapshot_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    j = journal()
    add(j, "run_started", "note")
    save_journal(j, path)
    lines = [
        {"run": "r1", "n": 2, "t": 1.0, "type": "note", "message": "already in the snapshot"},
        {"run": "other", "n": 3, "t": 2.0, "type": "note", "message": "another run's"},
        {"run": "r1", "n": 3, "t": 3.0, "type": "note", "message": "third"},
        {"run": "r1", "n": 3, "t": 3.0, "type": "note", "message": "third, written twice"},
        {"run": "r1", "n": 5, "t": 5.0, "type": "note", "message": "fifth (the fourth was lost)"},
    ]
    log_path(path).write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert messages(load_journal(path)) == ["run_started #1", "note #2", "third", "fifth (the fourth was lost)"]


def test_secrets_are_masked_in_the_log_exactly_as_in_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    writer = JournalWriter(path, reserve_bytes=0)
    j = journal()
    event = Noted(text="connected to redis://:s3cret@db:6379", details={"password": "s3cret", "port": 6379})
    j.events.append(EventRecord(t=event.t, type=event.type, message=event.message(), data=event.data()))
    assert writer.append(j)
    written = log_path(path).read_text()
    assert "s3cret" not in written
    (line,) = [json.loads(text) for text in written.splitlines()]
    assert {k: v for k, v in line.items() if k not in ("run", "n")} == redacted_dict(j)["events"][0]
    assert line["data"]["details"] == {"password": "***", "port": 6379}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_log_has_the_journals_permissions(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "journal.json"
    previous = os.umask(umask)
    try:
        writer = JournalWriter(path, reserve_bytes=0)
        j = journal()
        add(j, "run_started")
        writer.event_added(j)
    finally:
        os.umask(previous)
    assert log_path(path).stat().st_mode & 0o777 == path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_the_log_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    log_path(path).symlink_to(victim)
    writer = JournalWriter(path, reserve_bytes=0, stream=open(os.devnull, "w"))  # noqa: SIM115
    j = journal()
    add(j, "note")
    assert not writer.append(j)
    assert victim.read_text() == "untouched\n"


def test_at_the_end_the_whole_journal_is_written_and_the_log_removed(tmp_path: Path) -> None:
    journal_, _ = run_fake(tmp_path, ONE_FAULT)
    path = tmp_path / "run" / "journal.json"
    assert not log_path(path).exists()
    on_disk = json.loads(path.read_text())
    assert [e["type"] for e in on_disk["events"]] == [e.type for e in journal_.events]
    assert messages(load_journal(path)) == messages(journal_)


def test_a_run_killed_at_any_event_leaves_every_event_up_to_it_and_each_fault_as_it_was(tmp_path: Path) -> None:
    crashes: list[tuple[Path, list[dict[str, object]], list[str]]] = []

    def prepare(runner: Runner) -> None:
        run_dir = runner.journal_path.parent

        def kill_here(event: Event) -> None:
            # Subscribed after the runner's recorder: the event is on disk. What a SIGKILL now would leave:
            crash = tmp_path / "crashes" / f"{len(crashes):03d}"
            shutil.copytree(run_dir, crash)
            expected = [e.model_dump(mode="json") for e in runner.journal.events]
            crashes.append((crash / "journal.json", expected, [f.status for f in runner.journal.faults]))

        runner.bus.subscribe(kill_here)

    journal_, _ = run_fake(tmp_path, ONE_FAULT, prepare=prepare)
    assert journal_.verdict == "passed"
    assert len(crashes) == len(journal_.events) >= 10
    for path, expected, statuses in crashes:
        seen = load_journal(path)
        assert [e.model_dump(mode="json") for e in seen.events] == expected, path
        snapshot = json.loads(path.read_text())
        if expected[-1]["type"] in SNAPSHOT_EVENTS:  # the whole journal is current, faults and all
            assert len(snapshot["events"]) == len(expected), path
            assert [f.status for f in seen.faults] == statuses, path
        else:  # only appended: journal.json is as the last boundary left it
            assert len(snapshot["events"]) < len(expected), path
    assert {e.type for e in journal_.events} - SNAPSHOT_EVENTS  # some events were only appended
