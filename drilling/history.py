"""The drill history: one SQLite row per finished drill run, and the scheduler's last fire time per drill.

SQLite (stdlib) in WAL mode: `chaos.py drill history`, the scheduler and drill runs in other
processes read and write it at the same time. Each call opens its own short connection, so a
History object can be shared between threads.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from drilling.record import HistoryRow

ENV = "CHAOS_DRILL_HISTORY"
_COLUMNS = tuple(HistoryRow.model_fields)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS drill_runs (
    {", ".join(f"{c} {'TEXT PRIMARY KEY' if c == 'drill_run_id' else ''}" for c in _COLUMNS)}
);
CREATE INDEX IF NOT EXISTS drill_runs_by_name ON drill_runs (drill_name, started_at);
CREATE TABLE IF NOT EXISTS schedule_fires (
    drill_name TEXT PRIMARY KEY,
    last_fire REAL NOT NULL
);
"""


def default_history_path(runs_dir: Path) -> Path:
    """`$CHAOS_DRILL_HISTORY`, else `<runs-dir>/drills/history.sqlite`."""
    env = os.environ.get(ENV)
    return Path(env) if env else runs_dir / "drills" / "history.sqlite"


class History:
    """The history database at `path` (created with its folder on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    def add(self, row: HistoryRow) -> None:
        """Record a finished drill run (a run recorded again replaces its row)."""
        values = row.model_dump()
        marks = ", ".join("?" for _ in _COLUMNS)
        with self._connect() as db:
            db.execute(
                f"INSERT OR REPLACE INTO drill_runs ({', '.join(_COLUMNS)}) VALUES ({marks})",  # noqa: S608 (fixed names)
                [values[c] for c in _COLUMNS],
            )

    def runs(self, drill_name: str | None = None) -> list[HistoryRow]:
        """Recorded runs, oldest first; only those of `drill_name` when given."""
        query = f"SELECT {', '.join(_COLUMNS)} FROM drill_runs"  # noqa: S608 (fixed names)
        args: list[str] = []
        if drill_name is not None:
            query += " WHERE drill_name = ?"
            args.append(drill_name)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY started_at, drill_run_id", args).fetchall()
        return [HistoryRow.model_validate(dict(zip(_COLUMNS, r, strict=True))) for r in rows]

    # -- the scheduler's memory ------------------------------------------------------------------
    def last_fire(self, drill_name: str) -> float | None:
        """The scheduled time (epoch seconds) of the drill's latest fire that a scheduler claimed."""
        with self._connect() as db:
            row = db.execute("SELECT last_fire FROM schedule_fires WHERE drill_name = ?", [drill_name]).fetchone()
        return float(row[0]) if row else None

    def claim_fire(self, drill_name: str, fire_time: float) -> bool:
        """Record that the fire at `fire_time` is being run; False if it (or a later one) already was.

        One atomic statement, so two schedulers sharing the database never both run the same fire.
        """
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO schedule_fires (drill_name, last_fire) VALUES (?, ?) "
                "ON CONFLICT (drill_name) DO UPDATE SET last_fire = excluded.last_fire "
                "WHERE excluded.last_fire > schedule_fires.last_fire",
                [drill_name, fire_time],
            )
            return cursor.rowcount == 1


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def format_history(rows: list[HistoryRow]) -> str:
    """The history as an aligned plain-text table, oldest first."""
    header = ("started (UTC)", "drill", "run id", "verdict", "objectives", "RTO", "RPO", "detect", "recover", "report")
    table = [header]
    for row in rows:
        table.append(
            (
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.started_at)),
                row.drill_name,
                row.drill_run_id,
                row.verdict.upper(),
                f"{row.objectives_met}/{row.objectives_total} met",
                _seconds(row.rto_s),
                "-" if row.rpo_orders is None else f"{row.rpo_orders} lost",
                _seconds(row.time_to_detect_s),
                _seconds(row.time_to_recover_s),
                row.report or "-",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table) + "\n"
