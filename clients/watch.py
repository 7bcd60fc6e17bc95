"""A background watch for a change (a new leader, a promoted primary, quorum lost), never blocking its caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

POLL_S = 0.05
WATCH_LIMIT_S = 120.0
STOP_JOIN_S = 5.0


class ChangeWatch:
    """Polls `probe` on a daemon thread until it returns a value (the change happened) or `limit_s` passes.

    Never blocks its caller; `finish` stops it and says when (seconds after the start) and what was seen.
    """

    def __init__(self, probe: Callable[[], str | None], limit_s: float = WATCH_LIMIT_S) -> None:
        self._probe = probe
        self._limit_s = limit_s
        self._stop = threading.Event()
        self._done = threading.Event()
        self.started = time.monotonic()
        self.after_s: float | None = None
        self.value: str | None = None
        self._thread = threading.Thread(target=self._run, name="chaos-change-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                last = self._stop.is_set() or time.monotonic() - self.started >= self._limit_s
                try:
                    value = self._probe()
                except Exception:  # a probe that fails has not seen the change: keep watching
                    value = None
                if value is not None:
                    self.after_s, self.value = time.monotonic() - self.started, value
                    return
                if last:  # one more probe after the stop: a change seen just now still counts
                    return
                self._stop.wait(POLL_S)
        finally:
            self._done.set()

    def finish(self, wait_s: float = 0.0) -> tuple[float | None, str | None]:
        """Wait up to `wait_s` for the change, then stop watching; (seconds after the start, value) or Nones."""
        self._done.wait(wait_s)
        self._stop.set()
        self._thread.join(timeout=STOP_JOIN_S)
        return (round(self.after_s, 3) if self.after_s is not None else None), self.value
