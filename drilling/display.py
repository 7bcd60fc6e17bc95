"""The runbook in the terminal: a live `rich` view on a TTY, plain timestamped lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from engine.console import printable

State = dict[str, Any]
_STYLE = {"done": "green", "late": "yellow", "missed": "red", "skipped": "dim", "pending": ""}


def _countdown(step: dict[str, Any], now: float) -> str:
    if step["status"] != "pending" or step["due_at"] is None:
        return ""
    waited = now - step["due_at"]
    if step["expected_s"] is None:
        return f"due {waited:.0f}s ago"
    left = step["expected_s"] - waited
    return f"{left:.0f}s left" if left >= 0 else f"{-left:.0f}s OVERDUE"


class RunbookView:
    """A rich renderable that reads the drill's state every time it is drawn (so countdowns move)."""

    def __init__(self, state: Callable[[], State]) -> None:
        self.state = state

    def __rich__(self) -> RenderableType:
        state = self.state()
        now = time.time()
        elapsed = now - state["started_at"]
        head = Text.assemble(
            ("DRILL ", "bold"),
            (printable(state["title"]), "bold cyan"),
            f"  [{state['drill_run_id']}]  +{elapsed:.0f}s\n",
            ("phase: ", "bold"),
            state["phase"],
        )
        table = Table(expand=False, show_edge=False, pad_edge=False)
        for column in ("#", "step", "what", "how", "status", "time", "by"):
            table.add_column(column)
        current = state["current"]
        for i, step in enumerate(state["steps"]):
            status = step["status"]
            shown = (
                _countdown(step, now)
                if status == "pending"
                else (f"{step['took_s']:g}s" if step["took_s"] is not None else "")
            )
            marker = "▶" if i == current else str(i + 1)
            table.add_row(
                marker,
                Text(printable(step["id"])),  # Text, not str: a title is never read as rich markup
                Text(printable(step["title"])),
                Text(printable(step["how"])),
                Text(
                    status.upper() if status != "pending" else ("due" if step["due_at"] else "waiting"), _STYLE[status]
                ),
                shown,
                step["by"] or "",
            )
        pending = [s["id"] for s in state["steps"] if s["mode"] == "manual" and s["status"] == "pending"]
        foot = Text()
        if pending:
            foot.append(f"acknowledge: chaos.py drill ack {pending[0]} --by NAME", "bold")
            if state.get("page"):
                foot.append(f"   or open {state['page']}")
        return Group(head, table, foot)


class DrillConsole:
    """Where drill progress goes: `say()` prints a timestamped line; `live()` shows the view on a TTY."""

    def __init__(self, stream: TextIO, started_at: float, rich: bool) -> None:
        self.stream = stream
        self.started_at = started_at
        self.rich = rich
        self.console = Console(file=stream, force_terminal=rich) if rich else None

    def say(self, lines: list[str]) -> None:
        for line in lines:
            text = f"[drill {time.time() - self.started_at:+7.1f}s] {printable(line)}"
            if self.console is not None:
                self.console.print(text, markup=False, highlight=False)
            else:
                print(text, file=self.stream, flush=True)

    @contextmanager
    def live(self, view: RunbookView) -> Iterator[None]:
        if self.console is None:
            yield
            return
        with Live(view, console=self.console, refresh_per_second=4, redirect_stderr=True, redirect_stdout=False):
            yield
