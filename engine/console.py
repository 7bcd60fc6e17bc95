"""Console progress: one line per event, times relative to the run start."""

from __future__ import annotations

import re
import sys
from typing import TextIO

from engine.events import Event, RunStarted
from engine.redact import redact_text

# C0 and C1 control characters (escape sequences start with ESC or CSI) and DEL; tab and newline excluded.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` safe for a terminal: control characters shown as \\xNN, so a title can never move the cursor,
    recolour the screen or hide earlier lines."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class ConsoleProgress:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._t0: float | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._t0 = event.t
        if self.quiet and event.type not in ("run_started", "run_finished"):
            return
        offset = event.t - self._t0 if self._t0 is not None else 0.0
        print(f"[{offset:+7.1f}s] {printable(redact_text(event.message()))}", file=self.stream, flush=True)
