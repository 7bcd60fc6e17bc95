"""The journal's event log: each event appended as one JSON line beside journal.json, merged back on reading.

journal.json is rewritten whole (atomically) only at the run's boundaries; in between, every event is
appended to `journal.events.jsonl` in the same directory, one line each, redacted like the journal:
`{"run": <run_id>, "n": <1-based position in the journal's events>, "t", "type", "message", "data"}`.
A reader adds the lines past the snapshot's events, in order, so that a run killed mid-phase still
shows every event it appended. Lines of another run, lines the snapshot already holds and a torn line
(the runner killed, or the disk full, in the middle of a write) are skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.files import LIMITS, InputFileError, read_bytes

SUFFIX = ".events.jsonl"
WHAT = "a journal's event log (journal.events.jsonl)"
# Never follow a link planted in the run directory, never block on a FIFO; created 0666 less the umask.
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


def log_path(journal_path: Path) -> Path:
    """The event log that goes with `journal_path`: journal.json → journal.events.jsonl."""
    return journal_path.with_name(journal_path.stem + SUFFIX)


def encode(run_id: str, first: int, events: Sequence[Mapping[str, Any]]) -> bytes:
    """`events` (JSON data of EventRecords) as log lines, numbered from `first`."""
    return b"".join(
        (json.dumps({"run": run_id, "n": n, **event}, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        for n, event in enumerate(events, start=first)
    )


def append(path: Path, data: bytes) -> None:
    """Append `data` to the log at `path`, creating it (and its directory) if need be; raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, _FLAGS, 0o666)
    try:
        view = memoryview(data)
        while view:  # a short write (a disk filling up) is carried on, or raises
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def merge(raw: dict[str, Any], journal_path: Path) -> dict[str, Any]:
    """A journal's JSON data with the events its log holds past the snapshot's appended, in order.

    A log that is missing or cannot be read adds nothing: the snapshot stands as it is.
    """
    events = raw.get("events")
    if not isinstance(events, list):
        return raw
    try:
        data = read_bytes(log_path(journal_path), LIMITS["journal"], WHAT)
    except InputFileError:
        return raw
    tail = list(_past(data, raw.get("run_id"), len(events)))
    return {**raw, "events": [*events, *tail]} if tail else raw


def _past(data: bytes, run_id: object, last: int) -> Iterator[dict[str, Any]]:
    """The events of run `run_id` numbered past `last`, each once, in the order they were appended."""
    for line in data.split(b"\n"):
        try:
            item = json.loads(line)
        except ValueError:  # blank, or torn mid-line (also invalid UTF-8)
            continue
        if not isinstance(item, dict) or item.pop("run", None) != run_id:
            continue
        n = item.pop("n", None)
        if isinstance(n, int) and n > last:
            last = n
            yield item
