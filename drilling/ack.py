"""Acknowledging manual runbook steps of a running drill: the append-only inbox file and the live drills.

`chaos.py drill ack STEP` (another terminal) and the web page (drilling.ack_page) both append one
JSON line to the drill's `acks.jsonl`; the drill reads new lines as they come and decides whether each is valid.
A running drill advertises itself in `live.json` (its pid and page) beside its `drill.json`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

ACK_FILE = "acks.jsonl"
LIVE_FILE = "live.json"


@dataclass(frozen=True)
class Ack:
    step: str
    by: str
    t: float
    source: str


def append_ack(drill_dir: Path, step: str, by: str, source: str) -> Ack:
    """Append one acknowledgement to the drill's inbox (one small O_APPEND write: never interleaved)."""
    ack = Ack(step=step, by=by.strip()[:80] or "operator", t=time.time(), source=source)
    line = json.dumps({"step": ack.step, "by": ack.by, "t": ack.t, "source": ack.source}) + "\n"
    fd = os.open(drill_dir / ACK_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return ack


class AckInbox:
    """Reads acknowledgements appended since the last read."""

    def __init__(self, drill_dir: Path) -> None:
        self.path = drill_dir / ACK_FILE
        self._offset = 0

    def read_new(self) -> list[Ack]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        acks = []
        for raw in data[:end].splitlines():
            try:
                item = json.loads(raw)
                acks.append(Ack(str(item["step"]), str(item["by"]), float(item["t"]), str(item.get("source", "?"))))
            except (ValueError, KeyError, TypeError):
                continue  # not ours or torn: ignore rather than stop the drill
        return acks


@dataclass(frozen=True)
class LiveDrill:
    drill_dir: Path
    pid: int
    drill_name: str
    drill_run_id: str
    page: str | None


def write_live(drill_dir: Path, drill_name: str, drill_run_id: str, page: str | None) -> None:
    info = {"pid": os.getpid(), "drill_name": drill_name, "drill_run_id": drill_run_id, "page": page}
    (drill_dir / LIVE_FILE).write_text(json.dumps(info) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_drills(runs_dir: Path) -> list[LiveDrill]:
    """Drills running now whose records are under `<runs_dir>/drills/` (their process is alive)."""
    found = []
    for path in sorted((runs_dir / "drills").glob(f"*/{LIVE_FILE}")):
        try:
            info = json.loads(path.read_text())
            live = LiveDrill(path.parent, int(info["pid"]), info["drill_name"], info["drill_run_id"], info.get("page"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(live.pid):
            found.append(live)
    return found
