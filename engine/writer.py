"""Writing the run's journal without ever stopping a rollback: failures are kept, told once, and acted on.

A full disk, a read-only remount or a removed directory must never leave a fault in place. The writer
therefore never raises: the first failure is kept (`failure`) and printed once on stderr, and the
runner reads it every tick and aborts the run — rolling every fault back — rather than drilling on
with no record. A small reserve file is set aside in the run directory at the start; on the first
"no space left" it is deleted, so that the record of the abort and its rollback still fits.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from engine.journal import Journal, save_journal

MIN_FREE_ENV = "CHAOS_MIN_FREE_MB"
MIN_FREE_MB = 64  # a long run's journal, metrics, Locust log, ledgers and reports, with room to spare
RESERVE_FILE = ".space-reserve"
RESERVE_BYTES = 4 * 1024 * 1024  # room for the final journal of a long run (a 1-hour run writes ~2 MB)
FULL_BYTES = 1024 * 1024  # less than this free mid-run: the disk is full, the run stops before a write fails


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
    """Saves one journal file; `save` returns False instead of raising, and remembers why."""

    def __init__(
        self,
        path: Path,
        stream: TextIO | None = None,
        save: Callable[[Journal, Path], None] = save_journal,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        self.path = path
        self.failure: str | None = None
        self._stream = stream
        self._save = save
        self._reserve = path.parent / RESERVE_FILE
        self._reserve_bytes = reserve_bytes
        self._told = False
        self._space_checked_at = float("-inf")

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

    def save(self, journal: Journal) -> bool:
        """Write the journal; on failure keep the first reason, tell stderr once, and return False."""
        try:
            self._save(journal, self.path)
            return True
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) and self._release_reserve():
                try:
                    self._save(journal, self.path)
                    self._fail(f"the disk under {self.path.parent} is full (the reserve was used for this write)")
                    return True
                except OSError as again:
                    exc = again
            self._fail(f"cannot write {self.path}: {exc.strerror or exc}")
            return False

    def close(self) -> None:
        """The run is over: give the reserved room back."""
        self._release_reserve()

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
