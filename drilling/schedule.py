"""`chaos.py drill schedule`: run drills at their cron times with APScheduler, one run of a drill at a time.

Each fire is claimed in the history database before it runs (an atomic "this fire time is newer
than the last claimed one"), so a fire is never run twice: not by a restarted scheduler, not by two
schedulers sharing the database. On start, the latest fire missed while no scheduler ran is made
up once when it is within the drill's misfire grace (never on a drill's very first start). A fire
while the same drill still runs is skipped; the engine's stack lock keeps different drills of one
stack apart. Drills run as child processes (`chaos.py drill run --non-interactive`): the experiment
runner needs a main thread for its signal handling, and a crashed drill cannot take the scheduler
down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from drilling import cron
from drilling.history import History
from drilling.model import Drill, DrillPlan, load_drill, open_market
from engine.errors import ChaosError, InvalidInputError, Problem

Launch = Callable[[Path], int]


@dataclass
class ScheduledDrill:
    path: Path
    plan: DrillPlan
    trigger: CronTrigger
    running: threading.Lock = field(default_factory=threading.Lock)

    @property
    def drill(self) -> Drill:
        return self.plan.drill

    @property
    def name(self) -> str:
        return self.drill.name

    def refusal(self, now: datetime) -> str | None:
        """Why a fire at `now` must be skipped by the calendar (the drill's own, else its stacks'), or None."""
        if self.drill.calendar.override:
            return None
        try:
            return open_market(self.plan.calendars(), now)  # the stack files as they are at this fire
        except ChaosError as exc:
            return f"its calendar cannot be judged: {exc}"

    @property
    def grace_s(self) -> float:
        assert self.drill.schedule is not None
        return self.drill.schedule.misfire_grace


def drill_files(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded to their *.yaml/*.yml (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        else:
            files.append(path)
    return files


def load_scheduled(paths: list[Path], say: Callable[[str], None]) -> list[ScheduledDrill]:
    """Validate every drill file; those without a schedule are mentioned and left out."""
    problems: list[Problem] = []
    found: list[ScheduledDrill] = []
    names: dict[str, Path] = {}
    for path in drill_files(paths):
        try:
            plan = load_drill(path)
        except InvalidInputError as exc:
            problems += exc.problems
            continue
        drill = plan.drill
        if drill.name in names:
            problems.append(
                Problem(str(path), None, None, f"drill name {drill.name!r} is also used by {names[drill.name]}")
            )
            continue
        names[drill.name] = path
        if drill.schedule is None:
            say(f"{path}: drill {drill.name} has no schedule; not scheduled")
            continue
        found.append(ScheduledDrill(path, plan, cron.trigger(drill.schedule.cron, drill.schedule.timezone)))
    if problems:
        raise InvalidInputError(problems)
    return found


class DrillScheduler:
    """Fires drills at their cron times until `max_runs` drills ran, `duration_s` passed, or it is stopped."""

    def __init__(
        self,
        drills: list[ScheduledDrill],
        history: History,
        launch: Launch,
        *,
        max_runs: int | None = None,
        duration_s: float | None = None,
        out: TextIO | None = None,
        stop_running: Callable[[], None] | None = None,
    ) -> None:
        self.drills = drills
        self.stop_running = stop_running
        self.history = history
        self.launch = launch
        self.max_runs = max_runs
        self.duration_s = duration_s
        self.out = out or sys.stderr
        self.runs: list[tuple[str, float, int]] = []  # (drill, scheduled fire time, exit code)
        self.skipped: list[tuple[str, float, str]] = []
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._scheduler = BackgroundScheduler(timezone="UTC")

    def say(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        print(f"[{stamp}] {text}", file=self.out, flush=True)

    def _fire(self, item: ScheduledDrill, fire_time: datetime, why: str) -> None:
        if not item.running.acquire(blocking=False):
            self._skip(item, fire_time, "the previous run of this drill is still going")
            return
        try:
            if self._done.is_set():
                return  # stopping: leave the fire unclaimed for the next scheduler
            if not self.history.claim_fire(item.name, fire_time.timestamp()):
                self._skip(item, fire_time, "this fire was already run (by an earlier scheduler)")
                return
            reason = item.refusal(datetime.now(UTC))
            if reason is not None:
                self._skip(item, fire_time, reason)
                return
            self.say(f"drill {item.name}: running ({why}, scheduled {fire_time.isoformat()})")
            code = self.launch(item.path)
            with self._lock:
                self.runs.append((item.name, fire_time.timestamp(), code))
                if self.max_runs is not None and len(self.runs) >= self.max_runs:
                    self._done.set()
            self.say(f"drill {item.name}: finished, exit code {code}; next {self._next(item)}")
        finally:
            item.running.release()

    def _skip(self, item: ScheduledDrill, fire_time: datetime, reason: str) -> None:
        with self._lock:
            self.skipped.append((item.name, fire_time.timestamp(), reason))
        self.say(f"drill {item.name}: fire at {fire_time.isoformat()} skipped: {reason}")

    def _on_cron(self, item: ScheduledDrill) -> None:
        now = datetime.now(item.trigger.timezone)
        fire = cron.last_fire(item.trigger, now, timedelta(seconds=max(60.0, item.grace_s)))
        self._fire(item, fire or now, "on schedule")

    @staticmethod
    def _next(item: ScheduledDrill) -> str:
        # From the trigger, not the scheduler: a job asking the scheduler while it shuts down deadlocks.
        nxt = item.trigger.get_next_fire_time(None, datetime.now(item.trigger.timezone))
        return nxt.isoformat() if nxt is not None else "none"

    def _catch_up(self, item: ScheduledDrill) -> None:
        """On start: make up the latest fire missed while no scheduler ran, once, if within the grace."""
        last = self.history.last_fire(item.name)
        if last is None:
            return  # a drill scheduled for the first time starts with its next fire
        now = datetime.now(item.trigger.timezone)
        missed = cron.last_fire(item.trigger, now, timedelta(seconds=item.grace_s))
        if missed is not None and missed.timestamp() > last:
            self._scheduler.add_job(
                self._fire, args=[item, missed, "making up a missed fire"], id=f"{item.name}-missed", max_instances=1
            )

    def run(self) -> int:
        """Block until done; returns how many drills ran."""
        for item in self.drills:
            self._catch_up(item)
            self._scheduler.add_job(
                self._on_cron,
                trigger=item.trigger,
                args=[item],
                id=item.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(item.grace_s)),
            )
        self._scheduler.start()
        for item in self.drills:
            assert item.drill.schedule is not None
            self.say(
                f"drill {item.name}: cron '{item.drill.schedule.cron}' {item.drill.schedule.timezone}, "
                f"next {self._next(item)}"
            )
        deadline = time.monotonic() + self.duration_s if self.duration_s is not None else None
        try:
            while not self._done.wait(0.2):
                if deadline is not None and time.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            self.say("stopping: running drills roll back and end as interrupted")
            if self.stop_running is not None:
                self.stop_running()
            raise
        finally:
            with self._lock:
                self._done.set()
            self._scheduler.shutdown(wait=True)  # a drill that is running finishes (it rolls back on signals)
        return len(self.runs)


class ChildLauncher:
    """Runs `command(path)` as a child process and returns its exit code; stop() forwards SIGTERM."""

    def __init__(self, command: Callable[[Path], list[str]]) -> None:
        self.command = command
        self._children: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> int:
        proc = subprocess.Popen(self.command(path), start_new_session=True)  # our signals are forwarded by stop()
        with self._lock:
            self._children.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._children.discard(proc)

    def stop(self) -> None:
        """SIGTERM to every running drill (each rolls back its faults and ends as interrupted)."""
        with self._lock:
            children = list(self._children)
        for proc in children:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
