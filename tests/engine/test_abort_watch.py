"""The abort watch on its own: a condition must hold for its whole `for`, second after second; the red button
counts only when pressed during the run; a journal that cannot be written stops the run, on record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.abort_watch import AbortWatch
from engine.errors import Aborted
from engine.events import EventBus
from engine.journal import Journal, PhaseRecord
from engine.judge import LiveJudge
from engine.recorder import RunRecorder
from engine.writer import JournalWriter
from tests.engine.fakes import FakeClock, FakeLoad, World, fake_stack, make_plan

FAULT = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher}\n"
ABORT_WHEN = "abort_when:\n  - {metric: error_rate, above: 0.2, for: 3s}\n"


class Watched:
    """An abort watch over a fake load whose error rate is 0.5 in every second the world is broken."""

    def __init__(self, tmp_path: Path, journal_dir: Path | None = None) -> None:
        self.clock = FakeClock()
        self.world = World(self.clock, heal_s=0.0)
        plan = make_plan(tmp_path, FAULT, extra=ABORT_WHEN)
        self.load = FakeLoad(self.world, plan.experiment.load.duration)
        bus = EventBus()
        self.journal = Journal(
            run_id="r",
            tool_version="t",
            experiment_title="t",
            experiment_file="exp.yaml",
            experiment_sha256="0" * 64,
            experiment={},
            seed=1,
            started_at=self.clock.time(),
        )
        if journal_dir is None:
            journal_dir = tmp_path / "run"
            journal_dir.mkdir()
        writer = JournalWriter(journal_dir / "journal.json", reserve_bytes=0)
        self.recorder = RunRecorder(self.journal, writer, self.clock, bus)
        self.judge = LiveJudge(plan.experiment, self.load, self.clock, bus)
        self.button = tmp_path / "ABORT"
        self.watch = AbortWatch(plan.experiment, fake_stack(), self.judge, self.recorder, self.clock, self.button)
        self.load.start()
        self.t0 = self.load.wait_started(1)
        self.judge.start(self.t0)

    def second(self, broken: bool) -> None:
        """One more second of load, broken or not, then a tick."""
        if broken:
            self.world.active.add("matcher-1")
        else:
            self.world.active.clear()
        self.clock.sleep(1.0)
        self.judge.ingest()
        self.watch.check_conditions(self.t0)


def test_a_condition_aborts_only_once_it_held_for_its_whole_for(tmp_path: Path) -> None:
    watched = Watched(tmp_path)
    for broken in (False, True, True, False, True, True, False):  # never 3 in a row
        watched.second(broken)
    watched.second(True)
    watched.second(True)
    with pytest.raises(Aborted, match=r"abort condition 'error_rate above 0.2 for 3s' held for 3s"):
        watched.second(True)


def test_the_red_button_counts_only_when_pressed_during_the_run(tmp_path: Path) -> None:
    watched = Watched(tmp_path)
    watched.button.touch()
    started = watched.journal.started_at
    os.utime(watched.button, (started - 60, started - 60))  # left over from an earlier run
    watched.watch.tick(watched.t0)
    os.utime(watched.button, (started + 1, started + 1))
    with pytest.raises(Aborted, match=r"ABORT was created \(chaos.py abort\)"):
        watched.watch.tick(watched.t0)


def test_a_journal_that_cannot_be_written_aborts_with_the_error_in_the_open_phase(tmp_path: Path) -> None:
    (tmp_path / "gone").write_text("the run directory was replaced by a file")
    watched = Watched(tmp_path, journal_dir=tmp_path / "gone" / "run")
    watched.journal.phases.append(PhaseRecord(name="faults", started_at=watched.clock.time()))
    with pytest.raises(Aborted, match="the journal could not be written"):
        watched.watch.tick(watched.t0)
    (error,) = watched.journal.errors
    assert (error.phase, error.type) == ("faults", "JournalWriteError")
    assert error.message.startswith("cannot check the free space under")
