"""The load generator: Locust in its own process, streaming per-second metrics through a JSON-Lines file.

The engine never imports locust (it monkey-patches the whole process with gevent on import). Our
metrics plugin is added to the user's locustfile with Locust's own `-f a.py,b.py`, so any locustfile
streams metrics without changes; see docs/contracts.md §2 for the stream.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Protocol

from engine.errors import LoadError
from engine.integrity import LEDGER_DIR
from engine.journal import LoadRecord


class LoadDriver(Protocol):
    """What the runner needs from a load generator (Locust here, a fake in tests)."""

    record: LoadRecord

    def check_target(self) -> str | None:
        """None when the load's target answers, else why not (preflight; starts nothing)."""
        ...

    def start(self) -> None: ...

    def wait_started(self, timeout_s: float) -> float:
        """Block until the load runs; returns its start as epoch seconds."""
        ...

    def poll(self) -> list[dict[str, Any]]:
        """New metric records since the last call."""
        ...

    def running(self) -> bool: ...

    def wait_finished(self, timeout_s: float) -> bool:
        """Wait for the load to end on its own; True if it did."""
        ...

    def stop(self) -> None:
        """Stop the load now (idempotent)."""
        ...


def plugin_path() -> Path:
    spec = importlib.util.find_spec("loadgen")
    if spec is None or not spec.submodule_search_locations:
        raise LoadError("the Locust-side package 'loadgen' is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "metrics_plugin.py"


class JsonLinesTail:
    """Reads complete lines appended to a file since the last read; a partial last line waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.bad_lines = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(value, dict):
                records.append(value)
        return records


class LocustLoad:
    """Runs `python -m locust` headless for the experiment's load and tails its metrics file."""

    def __init__(self, record: LoadRecord, locustfile: Path, run_dir: Path) -> None:
        self.record = record
        self.locustfile = locustfile
        self.metrics_file = run_dir / "metrics.jsonl"
        self.ledger_dir = run_dir / LEDGER_DIR
        self.log_file = run_dir / "locust.log"
        self.record.log = str(self.log_file)
        self._tail = JsonLinesTail(self.metrics_file)
        self._pending: list[dict[str, Any]] = []
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        rec = self.record
        return [
            sys.executable,
            "-m",
            "locust",
            "-f",
            f"{self.locustfile},{plugin_path()}",
            "--headless",
            "--users",
            str(rec.users),
            "--spawn-rate",
            f"{rec.spawn_rate:g}",
            "--run-time",
            f"{math.ceil(rec.duration_s)}s",
            "--host",
            rec.host or "",
            "--stop-timeout",
            "2",
            "--only-summary",
            "--exit-code-on-error",
            "0",
        ]

    def check_target(self) -> str | None:
        host = self.record.host or ""
        parsed = urllib.parse.urlsplit(host)
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            with socket.create_connection((parsed.hostname or "", port), timeout=2.0):
                return None
        except (OSError, ValueError) as exc:
            return f"load target {host!r} does not accept connections: {exc}"

    def start(self) -> None:
        # Every process that places orders appends its acknowledgements under ledger/ (docs/contracts.md §4).
        env = {**os.environ, "CHAOS_METRICS_FILE": str(self.metrics_file), "CHAOS_LEDGER_DIR": str(self.ledger_dir)}
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.locustfile.parent,
                start_new_session=True,
            )

    def wait_started(self, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            records = self._tail.read()
            self._pending.extend(records)
            for rec in records:
                if rec.get("type") == "start":
                    self.record.started_at = float(rec["t"])
                    return self.record.started_at
            if not self.running():
                raise LoadError(f"Locust exited before the load started; see {self.log_file}:\n{self._log_tail()}")
            time.sleep(0.05)
        self.stop()
        raise LoadError(f"Locust did not start the load within {timeout_s:.0f}s; see {self.log_file}")

    def poll(self) -> list[dict[str, Any]]:
        records, self._pending = self._pending + self._tail.read(), []
        return records

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_finished(self, timeout_s: float) -> bool:
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        self._finished()
        return True

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._finished()
            return
        # SIGTERM lets Locust run its test_stop hooks, so the plugin flushes its last seconds.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        self._finished()

    def _finished(self) -> None:
        if self._proc is not None and self._proc.returncode is not None and self.record.exit_code is None:
            self.record.exit_code = self._proc.returncode
            self.record.finished_at = time.time()

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join("  " + line for line in text.strip().splitlines()[-lines:])
