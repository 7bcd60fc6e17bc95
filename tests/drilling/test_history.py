"""The history database: rows in and out in order, replacing a run's row, the scheduler's claimed fires."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from drilling.history import History, default_history_path, format_history
from drilling.record import HistoryRow


def row(name: str, run_id: str, started: float, verdict: str = "passed") -> HistoryRow:
    return HistoryRow(
        drill_name=name,
        drill_run_id=run_id,
        started_at=started,
        finished_at=started + 60,
        verdict=verdict,
        objectives_met=2,
        objectives_total=3,
        rto_s=4.25,
        rpo_orders=0,
        time_to_detect_s=1.5,
        time_to_recover_s=None,
        report="runs/drills/x/drill-report.html",
        record="runs/drills/x/drill.json",
        record_sha256="ab" * 32,
    )


def test_rows_come_back_oldest_first_and_filtered(tmp_path: Path) -> None:
    history = History(tmp_path / "h" / "history.sqlite")
    history.add(row("b", "r3", 300.0))
    history.add(row("a", "r1", 100.0))
    history.add(row("a", "r2", 200.0, "failed"))
    assert [r.drill_run_id for r in history.runs()] == ["r1", "r2", "r3"]
    assert [r.drill_run_id for r in History(history.path).runs("a")] == ["r1", "r2"]  # survives reopening
    assert history.runs("a")[1] == row("a", "r2", 200.0, "failed")
    history.add(row("a", "r2", 200.0, "passed"))  # recorded again: replaced, not duplicated
    assert [r.verdict for r in history.runs("a")] == ["passed", "passed"]
    table = format_history(history.runs("a")).splitlines()
    assert table[0].split()[:3] == ["started", "(UTC)", "drill"] and "4.2s" in table[1] and "2/3 met" in table[1]


def test_default_path_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAOS_DRILL_HISTORY", raising=False)
    assert default_history_path(tmp_path) == tmp_path / "drills" / "history.sqlite"
    monkeypatch.setenv("CHAOS_DRILL_HISTORY", str(tmp_path / "elsewhere.db"))
    assert default_history_path(tmp_path) == tmp_path / "elsewhere.db"


def test_a_fire_is_claimed_once_even_by_racing_schedulers(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    assert History(path).last_fire("d") is None
    wins: list[bool] = []
    threads = [threading.Thread(target=lambda: wins.append(History(path).claim_fire("d", 1000.0))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]
    history = History(path)
    assert history.last_fire("d") == 1000.0
    assert not history.claim_fire("d", 999.0)  # an older fire never runs after a newer one
    assert history.claim_fire("d", 1060.0) and history.last_fire("d") == 1060.0
