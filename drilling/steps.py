"""The runbook's manual steps while a drill runs: acknowledgements come in, the live view and page show them.

For the drill's duration: the ack page (interactive drills), `live.json` (so `chaos.py drill ack`
finds the drill), a ticker thread that reads the inbox and lets the runbook tick, and the live view.
After the experiments, `wait_for_acks` gives the manual steps still pending until `--ack-timeout`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drilling.ack import LIVE_FILE, AckInbox, write_live
from drilling.ack_page import AckServer
from drilling.display import DrillConsole, RunbookView
from drilling.model import Drill
from drilling.state import DrillState
from engine.durations import format_duration

TICK_S = 0.2


class StepServices:
    """Acknowledgements and their display for one drill run (`serving()`), and the final wait for them."""

    def __init__(self, drill: Drill, drill_run_id: str, drill_dir: Path, state: DrillState, console: DrillConsole):
        self.drill = drill
        self.drill_run_id = drill_run_id
        self.drill_dir = drill_dir
        self.state = state
        self.console = console
        self._stop = threading.Event()

    @contextmanager
    def serving(self, page: bool) -> Iterator[None]:
        """The ack page (when `page`), live.json, the ticker thread and the live view, until the block ends."""
        server = self._page() if page else None
        write_live(self.drill_dir, self.drill.name, self.drill_run_id, server.base_url if server else None)
        ticker = threading.Thread(target=self._tick, name="drill-ticker", daemon=True)
        ticker.start()
        try:
            with self.console.live(RunbookView(self.state.snapshot)):
                if server is not None:
                    self.console.say([f"runbook page: {server.url}"])
                yield
        finally:
            self._stop.set()
            ticker.join(timeout=5)
            (self.drill_dir / LIVE_FILE).unlink(missing_ok=True)
            if server is not None:
                server.stop()

    def _page(self) -> AckServer:
        server = AckServer(self.drill_dir, self.drill.title, self.drill.name, self.state.snapshot, self.state.check_ack)
        server.start()
        self.state.page = server.url
        return server

    def _tick(self) -> None:
        inbox = AckInbox(self.drill_dir)
        while not self._stop.wait(TICK_S):
            self.state.acknowledge(inbox.read_new())

    def wait_for_acks(self, timeout_s: float) -> None:
        """Until every step has finished, or `timeout_s` passed (the runbook then closes what is left)."""
        deadline = time.monotonic() + timeout_s
        announced = False
        while time.monotonic() < deadline:
            pending = self.state.pending_steps()
            if pending is None:
                return
            if not announced:
                self.state.set_phase("experiments finished: waiting for acknowledgements")
                wait = f"waiting up to {format_duration(timeout_s)} for: {', '.join(pending)}"
                self.console.say([f"{wait} (chaos.py drill ack STEP)"])
                announced = True
            time.sleep(TICK_S)
