"""Signals during a run: SIGINT, SIGTERM and SIGHUP interrupt the run; only a second Ctrl-C skips its rollback."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from engine.errors import Interrupted, SkipRollback

_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SignalGuard:
    """While installed, the first handled signal raises Interrupted in the main thread.

    Once `mask()` is called (rollback has begun) signals are only reported through `on_ignored`, with
    one exception: a second SIGINT (Ctrl-C) — counting the one that interrupted the run — raises
    SkipRollback, once. That is the operator's only way to leave faults in place; SIGTERM and SIGHUP
    never skip a rollback.
    """

    def __init__(self, on_ignored: Callable[[str], None]) -> None:
        self._on_ignored = on_ignored
        self._previous: dict[int, Any] = {}
        self._masked = False
        self._skippable = False
        self.received: list[str] = []

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (embedded use, tests)
        for sig in _HANDLED:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def mask(self) -> None:
        self._masked = True

    @contextlib.contextmanager
    def skippable(self) -> Iterator[None]:
        """While inside, a second Ctrl-C raises SkipRollback (once); wrap only the rollback loop in it."""
        self._skippable = True
        try:
            yield
        finally:
            self._skippable = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if self._masked:
            if signum == signal.SIGINT and self._skippable and self.received.count("SIGINT") >= 2:
                self._skippable = False
                raise SkipRollback(name)
            self._on_ignored(name)
            return
        self._masked = True  # a second signal while we unwind must not interrupt the unwinding
        raise Interrupted(name)
