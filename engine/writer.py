"""Writing the run's journal without ever stopping a rollback: failures are kept, told once, and acted on.

Every event is appended to the journal's event log (engine.eventlog: one line, cheap); the whole journal
is rewritten atomically only at the run's boundaries (SNAPSHOT_EVENTS) and at its end, after which the
log is no longer needed.

A full disk, a read-only remount or a removed directory must never leave a fault in place. The writer
therefore never raises: the first failure is kept (`failure`) and printed once on stderr, and the
runner reads it every tick and aborts the run — rolling every fault back — rather than drilling on
with no record. A small reserve file is set aside in the run directory at the start; on the first
"no space left" it is deleted, so that the record of the abort and its rollback still fits.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from engine import eventlog
from engine.journal import Journal, save_journal
from engine.redact import redact

MIN_FREE_ENV = "CHAOS_MIN_FREE_MB"
MIN_FREE_MB = 64  # a long run's journal, metrics, Locust log, ledgers and reports, with room to spare
RESERVE_FILE = ".space-reserve"
RESERVE_BYTES = 4 * 1024 * 1024  # room for the final journal of a long run (a 1-hour run writes ~2 MB)
FULL_BYTES = 1024 * 1024  # less than this free mid-run: the disk is full, the run stops before a write fails
# After these events the whole journal is rewritten: the start, phase boundaries, and each fault's injection
# and rollback (what `recover`, the fault matrix and a reader polling journal.json need to see at once).
SNAPSHOT_EVENTS = frozenset(
    {"run_started", "phase_started", "phase_finished", "fault_injected", "fault_rolled_back", "run_finished"}
)


def min_free_mb() -> float:
    """The free space a run needs in its runs directory: $CHAOS_MIN_FREE_MB, else 64 MB."""
    try:
        return max(0.0, float(os.environ.get(MIN_FREE_ENV, MIN_FREE_MB)))
    except ValueError:
        return float(MIN_FREE_MB)


def space_problem(directory: Path) -> str | None:
    """Why a run cannot keep its record in `directory` (too little free space), or None."""
    try:
        free = shutil.disk_usage(directory).free / 1e6
    except OSError as exc:
        return f"cannot check the free space of {directory}: {exc.strerror or exc}"
    need = min_free_mb()
    if free < need:
        return (
            f"the runs directory {directory} has {free:.1f} MB free; a run needs at least {need:g} MB for its "
            f"journal, ledgers and reports (free some space, use --runs-dir elsewhere, or set {MIN_FREE_ENV})"
        )
    return None


class JournalWriter:
    """Saves one journal and appends to its event log; no method raises: False, and `failure` says why."""

    def __init__(
        self,
        path: Path,
        stream: TextIO | None = None,
        save: Callable[[Journal, Path], None] = save_journal,
        reserve_bytes: int = RESERVE_BYTES,
        append: Callable[[Path, bytes], None] = eventlog.append,
    ) -> None:
        self.path = path
        self.events_path = eventlog.log_path(path)
        self.failure: str | None = None
        self._stream = stream
        self._save = save
        self._append = append
        self._reserve = path.parent / RESERVE_FILE
        self._reserve_bytes = reserve_bytes
        self._told = False
        self._space_checked_at = float("-inf")
        self._logged = 0  # the journal's events already in the event log
        self._torn = False  # the last append may have stopped mid-line: start the next on a line of its own

    def set_aside(self) -> None:
        """Reserve room for the last writes of the run (best effort: a disk already full is a preflight matter)."""
        try:
            self._reserve.parent.mkdir(parents=True, exist_ok=True)
            with self._reserve.open("wb") as handle:
                handle.write(b"\0" * self._reserve_bytes)  # written, not sparse: the blocks must really be held
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            self._reserve.unlink(missing_ok=True)

    def watch_space(self, now: float) -> None:
        """Once a second at most: a disk that fills while nothing is being written still stops the run."""
        if self.failure is not None or now - self._space_checked_at < 1.0:
            return
        self._space_checked_at = now
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError as exc:
            self._fail(f"cannot check the free space under {self.path.parent}: {exc.strerror or exc}")
            return
        if free < FULL_BYTES:
            self._fail(f"the disk under {self.path.parent} is full ({free // 1024} KB free)")

    def event_added(self, journal: Journal) -> bool:
        """The journal has a new event: append it to the log, and after a boundary event rewrite the journal."""
        logged = self.append(journal)
        if journal.events and journal.events[-1].type in SNAPSHOT_EVENTS:
            return self.save(journal) and logged
        return logged

    def save(self, journal: Journal) -> bool:
        """Write the whole journal atomically; on failure keep the first reason, tell stderr once, return False."""
        return self._write(self.path, lambda: self._save(journal, self.path))

    def append(self, journal: Journal) -> bool:
        """Append the journal's events not yet in the event log, each as one line (a failed append is retried
        with the next one: nothing is skipped)."""
        if len(journal.events) <= self._logged:
            return True
        # Masked as redacted_dict masks the journal's events (they are not one of its generated sections).
        new = [redact(event.model_dump(mode="json")) for event in journal.events[self._logged :]]
        lines = eventlog.encode(journal.run_id, self._logged + 1, new)

        def write() -> None:
            chunk = b"\n" + lines if self._torn else lines
            self._torn = True
            self._append(self.events_path, chunk)
            self._torn = False

        if not self._write(self.events_path, write):
            return False
        self._logged += len(new)
        return True

    def finish(self, journal: Journal) -> bool:
        """The last word: the whole journal; once it is written, its event log holds nothing more and goes."""
        if not self.save(journal):
            return False
        with contextlib.suppress(OSError):  # a log left behind is harmless: readers skip what journal.json holds
            self.events_path.unlink(missing_ok=True)
        return True

    def close(self) -> None:
        """The run is over: give the reserved room back."""
        self._release_reserve()

    def _write(self, path: Path, write: Callable[[], None]) -> bool:
        try:
            write()
            return True
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) and self._release_reserve():
                try:
                    write()
                    self._fail(f"the disk under {self.path.parent} is full (the reserve was used for this write)")
                    return True
                except OSError as again:
                    exc = again
            self._fail(f"cannot write {path}: {exc.strerror or exc}")
            return False

    def _release_reserve(self) -> bool:
        try:
            self._reserve.unlink()
            return True
        except OSError:
            return False

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        if not self._told:
            self._told = True
            stream = self._stream or sys.stderr
            try:
                print(f"WARNING: {reason}; the run is being stopped and every fault rolled back", file=stream)
                stream.flush()
            except (OSError, ValueError):
                pass  # not even stderr: the failure is still kept and acted on
