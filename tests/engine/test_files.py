"""Bounded reads of input files: regular files only, at most the limit, a FIFO refused without waiting."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from drilling.record import load_drill_record
from engine.files import SQLITE_HEADER, InputFileError, check_sqlite, read_bytes
from engine.journal import JOURNAL_SCHEMA_VERSION, load_journal
from tests.cli.odd_paths import make_dangling_link, make_fifo, make_huge, make_looping_link


def test_a_regular_file_is_read_whole_within_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "ok.json"
    path.write_bytes(b"x" * 1000)
    assert read_bytes(path, 1000, "a file") == b"x" * 1000
    with pytest.raises(InputFileError, match="file is 1,000 bytes; the limit is 999 for a file"):
        read_bytes(path, 999, "a file")


def test_generated_content_is_cut_at_the_limit_although_its_size_says_zero() -> None:
    maps = Path("/proc/self/maps")  # st_size 0, content generated on read
    assert maps.stat().st_size == 0
    with pytest.raises(InputFileError, match="more than 10 bytes; the limit is 10"):
        read_bytes(maps, 10, "a file")


def test_a_fifo_with_a_writer_waiting_is_refused_at_once(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path)
    writer = threading.Thread(target=lambda: Path(fifo).open("wb").close(), daemon=True)
    writer.start()
    started = time.monotonic()
    with pytest.raises(InputFileError, match=r"is a FIFO \(named pipe\), expected a journal"):
        read_bytes(fifo, 100, "a journal")
    assert time.monotonic() - started < 1
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # release the writer
    writer.join(timeout=5)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (make_dangling_link, "is a dangling symbolic link (to "),
        (make_looping_link, "is a symbolic link loop"),
        (lambda tmp: Path("/dev/zero"), "is a character device, expected a file"),
        (lambda tmp: tmp, "is a directory, expected a file"),
        (make_huge, "file is 200,000,000 bytes; the limit is 1,000"),
    ],
)
def test_odd_paths_are_refused_with_their_kind(tmp_path: Path, make: object, reason: str) -> None:
    assert callable(make)
    path = make(tmp_path)
    with pytest.raises(InputFileError) as info:
        read_bytes(path, 1000, "a file")
    assert info.value.reason.startswith(reason)
    assert str(info.value) == f"{path}: {info.value.reason}"


def test_journal_and_drill_record_readers_are_bounded_and_refuse_devices(tmp_path: Path) -> None:
    for load in (load_journal, load_drill_record):
        with pytest.raises(ValueError, match=r"/dev/zero: not a readable (journal|drill record): is a character"):
            load(Path("/dev/zero"))
        with pytest.raises(ValueError, match=r"file is 200,000,000 bytes; the limit is 1[26]"):
            load(make_huge(tmp_path))


def test_a_journal_with_the_right_version_but_wrong_fields_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text(f'{{"schema_version": {JOURNAL_SCHEMA_VERSION}, "run_id": 5}}')
    with pytest.raises(ValueError) as info:
        load_journal(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a valid journal (") and "\n" not in message


def test_sqlite_check_accepts_a_database_or_an_empty_file_only(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    db.write_bytes(SQLITE_HEADER + b"\x00" * 100)
    check_sqlite(db)
    db.write_bytes(b"")
    check_sqlite(db)
    db.write_bytes(b"SQLite format 2 and something")
    with pytest.raises(InputFileError, match="is not an SQLite database"):
        check_sqlite(db)
