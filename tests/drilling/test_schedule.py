"""The scheduler with real APScheduler and second-resolution crons: fires, never overlaps, never fires twice."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from drilling.history import History
from drilling.schedule import DrillScheduler, ScheduledDrill, load_scheduled
from tests.support.helpers import ROOT

pytestmark = pytest.mark.slow

EXPERIMENT = ROOT / "experiments" / "matcher-leader-kill.yaml"


def drill_file(tmp_path: Path, cron: str, grace: str = "10s", calendar: str = "{market_hours: none}") -> Path:
    path = tmp_path / "drill.yaml"
    path.write_text(f"""\
version: 1
name: tick
title: Scheduled test drill
owner: tests
experiments: [{EXPERIMENT}]
schedule: {{cron: "{cron}", timezone: Asia/Shanghai, misfire_grace: {grace}}}
calendar: {calendar}
""")
    return path


def scheduled(path: Path) -> list[ScheduledDrill]:
    return load_scheduled([path], print)


class Launches:
    """A stand-in for the drill child process: records when each run started and ended."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> int:
        start = time.monotonic()
        time.sleep(self.seconds)
        with self._lock:
            self.spans.append((start, time.monotonic()))
        return 0


def test_fires_on_schedule_and_never_overlaps(tmp_path: Path) -> None:
    launches = Launches(seconds=2.2)
    scheduler = DrillScheduler(scheduled(drill_file(tmp_path, "* * * * * *")), History(tmp_path / "h.db"), launches)
    scheduler.duration_s = 5.5
    ran = scheduler.run()
    assert 2 <= ran <= 3, launches.spans
    spans = sorted(launches.spans)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), spans  # one at a time
    fires = [fire for _, fire, _ in scheduler.runs]
    assert len(set(fires)) == len(fires) and all(f == int(f) for f in fires)  # whole-second fire times


def test_max_runs_stops_the_scheduler(tmp_path: Path) -> None:
    launches = Launches()
    scheduler = DrillScheduler(
        scheduled(drill_file(tmp_path, "* * * * * *")), History(tmp_path / "h.db"), launches, max_runs=2, duration_s=30
    )
    started = time.monotonic()
    assert scheduler.run() == 2
    assert time.monotonic() - started < 6


def test_a_restart_makes_up_a_missed_fire_once(tmp_path: Path) -> None:
    now = datetime.now()
    second = (now.second - 3) % 60  # the drill fired 3 s ago and fires again in a minute
    path = drill_file(tmp_path, f"{second} * * * * *", grace="20s")
    history = History(tmp_path / "h.db")

    first_ever = DrillScheduler(scheduled(path), history, Launches(), duration_s=1.0)
    assert first_ever.run() == 0  # a drill's first scheduler does not make up fires from before it existed

    history.claim_fire("tick", time.time() - 120)  # the last scheduler ran it two minutes ago, then died
    restarted = DrillScheduler(scheduled(path), history, Launches(), duration_s=1.5)
    assert restarted.run() == 1
    ((name, fire, code),) = restarted.runs
    assert name == "tick" and code == 0 and 1 <= time.time() - fire <= 6 and fire == int(fire)
    assert history.last_fire("tick") == fire

    again = DrillScheduler(scheduled(path), history, Launches(), duration_s=1.5)
    assert again.run() == 0  # restarted once more: that fire is not run twice


def test_a_missed_fire_older_than_the_grace_is_not_made_up(tmp_path: Path) -> None:
    second = (datetime.now().second - 8) % 60
    path = drill_file(tmp_path, f"{second} * * * * *", grace="5s")
    history = History(tmp_path / "h.db")
    history.claim_fire("tick", time.time() - 120)
    assert DrillScheduler(scheduled(path), history, Launches(), duration_s=1.0).run() == 0


def test_two_schedulers_sharing_a_history_never_run_the_same_fire(tmp_path: Path) -> None:
    path = drill_file(tmp_path, "* * * * * *")
    schedulers = [
        DrillScheduler(scheduled(path), History(tmp_path / "h.db"), Launches(seconds=0.3), duration_s=3.5)
        for _ in range(2)
    ]
    threads = [threading.Thread(target=s.run) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    fires = [fire for s in schedulers for _, fire, _ in s.runs]
    assert len(fires) >= 2 and len(fires) == len(set(fires))
    assert any("already run" in reason for s in schedulers for _, _, reason in s.skipped)


def test_the_calendar_guard_skips_fires_inside_market_hours(tmp_path: Path) -> None:
    always_open = (
        "{market_hours: {timezone: Asia/Shanghai, weekdays: [mon, tue, wed, thu, fri, sat, sun], "
        "sessions: ['00:00-23:59']}}"
    )
    launches = Launches()
    scheduler = DrillScheduler(
        scheduled(drill_file(tmp_path, "* * * * * *", calendar=always_open)),
        History(tmp_path / "h.db"),
        launches,
        duration_s=2.5,
    )
    assert scheduler.run() == 0 and launches.spans == []
    assert scheduler.skipped and all("market is open" in reason for _, _, reason in scheduler.skipped)


def test_drills_without_a_schedule_are_left_out(tmp_path: Path) -> None:
    path = drill_file(tmp_path, "* * * * * *")
    path.write_text(
        path.read_text().replace('schedule: {cron: "* * * * * *", timezone: Asia/Shanghai, misfire_grace: 10s}\n', "")
    )
    said: list[str] = []
    assert load_scheduled([tmp_path], said.append) == []
    assert "has no schedule" in said[0]
