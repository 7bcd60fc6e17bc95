"""The runner when the framework itself fails: a journal it cannot write, a ledger it cannot write, a calendar
that turns during the run. Whatever happens, every injected fault is rolled back and nothing more injected."""

from __future__ import annotations

import errno
from pathlib import Path

from engine.journal import Journal, save_journal
from engine.runner import Runner
from engine.stack import LiveStack
from engine.undo import UndoLedger
from engine.writer import JournalWriter
from stackspec.targets import MarketHours
from tests.engine.fakes import T0, FakeClock, World, fake_stack, run_fake

TWO_FAULTS = """\
- {at: 10s, duration: 20s, kind: fake.break, target: matcher}
- {at: 14s, duration: 10s, kind: fake.break, target: gateway}
"""
TWO_AT_ONCE = "guards: {max_concurrent_faults: 2}\n"


def test_a_journal_that_cannot_be_written_aborts_the_run_and_rolls_every_fault_back(tmp_path: Path) -> None:
    world = World(FakeClock())
    writers: list[JournalWriter] = []

    def prepare(runner: Runner) -> None:
        # The disk fills once both faults are in place (the 2nd injection is on record).
        def save(journal: Journal, path: Path) -> None:
            if len(world.active) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            save_journal(journal, path)

        runner.writer = JournalWriter(runner.journal_path, save=save, reserve_bytes=0)
        writers.append(runner.writer)

    journal, _ = run_fake(tmp_path, TWO_FAULTS, extra=TWO_AT_ONCE, world=world, prepare=prepare)
    assert journal.verdict == "aborted", journal.summary
    assert "the journal could not be written" in journal.summary
    assert [f.status for f in journal.faults] == ["rolled_back", "rolled_back"]
    rollbacks = [c for c in world.calls if c[0] == "rollback"]
    assert rollbacks == [("rollback", "gateway-1"), ("rollback", "matcher-1")]  # newest first, both
    assert not world.active
    assert writers[0].failure is not None and "No space left" in writers[0].failure
    assert [e.type for e in journal.errors] == ["JournalWriteError"]
    # Aborted at the first tick after the failure, long before the faults' own ends.
    (matcher, _) = journal.faults
    assert matcher.ended_at is not None and matcher.injected_at is not None
    assert matcher.ended_at - matcher.injected_at < 10


def test_an_undo_ledger_that_cannot_be_written_means_the_fault_is_not_injected(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "ledger-is-a-file"
    ledger_dir.write_text("not a directory")  # every append to <it>/undo-ledger.jsonl fails
    journal, world = run_fake(tmp_path, TWO_FAULTS, extra=TWO_AT_ONCE, undo_ledger=ledger_dir / "undo-ledger.jsonl")
    assert journal.verdict == "aborted", journal.summary
    assert [c for c in world.calls if c[0] == "inject"] == []
    assert journal.faults[0].status == "failed" and "not injected" in (journal.faults[0].error or "")
    assert "cannot write the undo ledger" in journal.summary


def test_a_ledger_that_cannot_cross_a_fault_out_keeps_it_pending_and_the_rollback_goes_on(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger" / "undo-ledger.jsonl"
    calls = {"n": 0}
    original = UndoLedger.done

    def failing_done(self: UndoLedger, key: str) -> None:
        calls["n"] += 1
        raise OSError(errno.ENOSPC, "No space left on device")

    UndoLedger.done = failing_done  # type: ignore[method-assign]
    try:
        journal, world = run_fake(tmp_path, TWO_FAULTS, extra=TWO_AT_ONCE, undo_ledger=ledger_path)
    finally:
        UndoLedger.done = original  # type: ignore[method-assign]
    assert [f.status for f in journal.faults] == ["rolled_back", "rolled_back"]
    assert calls["n"] == 2 and not world.active
    assert len(UndoLedger(ledger_path).pending()) == 2  # `recover` will verify them again
    assert any("stays listed until `chaos.py recover`" in e.message for e in journal.events)


def stack_trading_from(session: str) -> LiveStack:
    desc = fake_stack().description
    hours = MarketHours(timezone="Asia/Shanghai", weekdays=["fri"], sessions=[session])
    return LiveStack(desc.model_copy(update={"market_hours": hours}), None)


def test_a_trading_session_opening_mid_run_rolls_back_and_injects_nothing_more(tmp_path: Path) -> None:
    # T0 is a Friday 16:00 in Shanghai; the run starts 20 s before, and the session opens at 16:00.
    world = World(FakeClock(T0 - 20))
    method = """\
- {at: 10s, duration: 15s, kind: fake.break, target: matcher}
- {at: 28s, duration: 5s, kind: fake.break, target: gateway}
"""
    journal, _ = run_fake(tmp_path, method, world=world, stack=stack_trading_from("16:00-17:00"))
    assert journal.verdict == "aborted", journal.summary
    assert "a trading session opened during the run" in journal.summary
    assert [f.status for f in journal.faults] == ["rolled_back", "pending"]
    assert [c for c in world.calls if c[0] == "inject"] == [("inject", "matcher-1")]
    matcher = journal.faults[0]
    assert matcher.ended_at is not None and matcher.ended_at <= T0 + 1.0  # rolled back as the session opened
    guards = [g for g in journal.guards if g.name == "market_hours"]
    assert any(g.ok and g.detail.startswith("before fault #1: outside trading hours") for g in guards)
    assert any(not g.ok and "the market is open: 16:00-17:00" in g.detail for g in guards)


def test_a_calendar_that_stays_closed_changes_nothing(tmp_path: Path) -> None:
    world = World(FakeClock(T0 - 20))
    journal, _ = run_fake(
        tmp_path, TWO_FAULTS.splitlines()[0] + "\n", world=world, stack=stack_trading_from("17:00-18:00")
    )
    assert journal.verdict == "passed", journal.summary
