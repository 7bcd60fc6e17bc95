"""The runner with fakes: rollback always, LIFO, on errors and signals; nothing injected on a bad baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ExitCode
from engine.events import Event, EventBus
from engine.journal import load_journal
from engine.undo import UndoLedger
from tests.engine.fakes import FakeClock, World, run_fake

ONE_FAULT = """\
- {at: 10s, duration: 8s, kind: fake.break, target: matcher}
"""


def test_passing_run_injects_rolls_back_verifies_and_measures_rto(tmp_path: Path) -> None:
    journal, world = run_fake(tmp_path, ONE_FAULT, extra="objectives: {rto: 15s}\n")
    assert journal.verdict == "passed", journal.summary
    assert journal.exit_code == ExitCode.PASSED
    actions = [c for c in world.calls if c[0] != "resolve"]
    assert actions == [("inject", "matcher-1"), ("rollback", "matcher-1"), ("verify", "matcher-1")]
    fault = journal.faults[0]
    assert fault.status == "rolled_back"
    assert fault.injected_at is not None and fault.ended_at is not None
    assert 7.9 <= fault.ended_at - fault.injected_at <= 8.5
    # Broken while injected (8 s) and for 2 s of healing, measured at 1 s resolution.
    assert fault.recovery is not None and fault.recovery.rto_s is not None
    assert 9.0 <= fault.recovery.rto_s <= 11.5
    assert fault.recovery.impact_s is not None and fault.recovery.impact_s >= 9
    assert fault.measured == {"healed_after_s": 2.0}  # what the injector measured
    assert [o.met for o in journal.objectives] == [True]
    assert [p.name for p in journal.phases] == ["preflight", "baseline", "faults", "recovery", "verdict"]
    assert {c.phase for c in journal.checks} == {"baseline", "recovery"}
    assert all(c.ok for c in journal.checks)


def test_journal_on_disk_is_the_final_journal(tmp_path: Path) -> None:
    journal, _ = run_fake(tmp_path, ONE_FAULT)
    on_disk = load_journal(tmp_path / "run" / "journal.json")
    assert on_disk.verdict == journal.verdict == "passed"
    raw = json.loads((tmp_path / "run" / "journal.json").read_text())
    assert raw["schema_version"] == 2
    assert all("t" in event and event["t"] > 0 for event in raw["events"])
    assert [e["type"] for e in raw["events"]][:3] == ["run_started", "phase_started", "phase_finished"]


def test_missed_rto_objective_deviates(tmp_path: Path) -> None:
    journal, _ = run_fake(tmp_path, ONE_FAULT, extra="objectives: {rto: 5s}\n")
    assert journal.verdict == "deviated"
    assert journal.exit_code == ExitCode.DEVIATED
    assert [o.met for o in journal.objectives] == [False]
    assert "RTO of fault #1" in journal.summary


def test_nothing_injected_when_baseline_fails(tmp_path: Path) -> None:
    world = World(FakeClock(), broken_from_start=True)
    journal, world = run_fake(tmp_path, ONE_FAULT, world=world)
    assert journal.verdict == "deviated"
    assert journal.exit_code == ExitCode.DEVIATED
    assert not [c for c in world.calls if c[0] in ("inject", "rollback")]
    assert [f.status for f in journal.faults] == ["skipped"]
    assert journal.phase("baseline") is not None and journal.phase("baseline").status == "deviated"  # type: ignore[union-attr]
    assert "nothing was injected" in journal.summary
    # The run ends before the fault's time: the load was stopped early.
    assert journal.load is not None and journal.load.finished_at is not None
    assert journal.load.finished_at - journal.started_at < 12


def test_overlapping_faults_unwind_last_in_first_out_when_the_load_dies(tmp_path: Path) -> None:
    method = """\
    - {at: 6s, duration: 20s, kind: fake.break, target: matcher}
    - {at: 8s, duration: 20s, kind: fake.break, target: gateway}
    - {at: 10s, duration: 5s, kind: fake.break, target: matcher}
    """
    world = World(FakeClock(), load_dies_at=12.0)
    journal, world = run_fake(tmp_path, method, world=world)
    undo = [c for c in world.calls if c[0] == "rollback"]
    # The load generator died at +12s with three faults in place: all undone, newest first.
    assert undo == [("rollback", "matcher-1"), ("rollback", "gateway-1"), ("rollback", "matcher-1")]
    assert [f.ended_at for f in journal.faults] == sorted(f.ended_at or 0 for f in journal.faults)[::-1]
    assert journal.verdict == "error"
    assert journal.exit_code == ExitCode.CANNOT_RUN
    assert [f.status for f in journal.faults] == ["rolled_back", "rolled_back", "rolled_back"]
    assert journal.errors[0].type == "LoadError"
    assert journal.phase("rollback") is not None


def test_injector_error_on_one_target_still_rolls_that_fault_back(tmp_path: Path) -> None:
    method = "- {at: 10s, duration: 5s, kind: fake.break, target: matcher, params: {raise_in_inject: true}}\n"
    journal, world = run_fake(tmp_path, method)
    assert ("rollback", "matcher-1") in world.calls
    assert journal.faults[0].inject[0].ok is False
    assert "injector bug" in (journal.faults[0].inject[0].error or "")
    assert journal.verdict == "error"


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_during_injection_rolls_back_lifo_and_exits_130(tmp_path: Path, signame: str) -> None:
    method = f"""\
    - {{at: 6s, duration: 20s, kind: fake.break, target: gateway}}
    - {{at: 10s, duration: 8s, kind: fake.break, target: matcher, params: {{signal_in_inject: {signame}}}}}
    """
    journal, world = run_fake(tmp_path, method)
    assert journal.verdict == "interrupted"
    assert journal.exit_code == ExitCode.INTERRUPTED
    assert [c for c in world.calls if c[0] == "rollback"] == [
        ("rollback", "matcher-1"),
        ("rollback", "gateway-1"),
    ]
    assert ("verify", "matcher-1") in world.calls and ("verify", "gateway-1") in world.calls
    assert [f.status for f in journal.faults] == ["rolled_back", "rolled_back"]
    assert any(e.type == "note" and signame in e.message for e in journal.events)


def test_signal_during_rollback_does_not_stop_the_rollback(tmp_path: Path) -> None:
    method = """\
    - {at: 6s, duration: 20s, kind: fake.break, target: matcher}
    - at: 8s
      duration: 20s
      kind: fake.break
      target: gateway
      params: {signal_in_inject: SIGINT, signal_in_rollback: SIGTERM}
    """
    journal, world = run_fake(tmp_path, method)
    assert [c for c in world.calls if c[0] == "rollback"] == [
        ("rollback", "gateway-1"),
        ("rollback", "matcher-1"),
    ]
    assert journal.verdict == "interrupted"
    assert any("SIGTERM received while rolling back" in e.message for e in journal.events)


def test_a_second_ctrl_c_skips_the_rollback_leaves_the_rest_pending_and_exits_3(tmp_path: Path) -> None:
    method = """\
    - {at: 6s, duration: 20s, kind: fake.break, target: matcher}
    - at: 8s
      duration: 20s
      kind: fake.break
      target: gateway
      params: {signal_in_inject: SIGINT, signal_in_rollback: SIGINT}
    """
    ledger = tmp_path / "undo-ledger.jsonl"
    journal, world = run_fake(tmp_path, method, undo_ledger=ledger)
    # The first Ctrl-C interrupted the run; the second, inside the gateway's rollback, skipped the rest.
    assert [c for c in world.calls if c[0] == "rollback"] == [("rollback", "gateway-1")]
    assert journal.verdict == "rollback_failed"
    assert journal.exit_code == ExitCode.ROLLBACK_FAILED
    assert [f.status for f in journal.faults] == ["rollback_failed", "rollback_failed"]
    assert all("second Ctrl-C" in (f.error or "") for f in journal.faults)
    assert any("left in place: #2 fake.break, #1 fake.break" in e.message for e in journal.events)
    # Both stay in the undo ledger for `chaos.py recover`.
    assert sorted(p.index for p in UndoLedger(ledger).pending()) == [1, 2]


def test_a_single_ctrl_c_during_a_normal_rollback_does_not_skip_it(tmp_path: Path) -> None:
    # The load dies at +12s with the fault in place: the run unwinds without any Ctrl-C before.
    method = "- {at: 10s, duration: 20s, kind: fake.break, target: matcher, params: {signal_in_rollback: SIGINT}}\n"
    journal, world = run_fake(tmp_path, method, world=World(FakeClock(), load_dies_at=12.0))
    assert [c for c in world.calls if c[0] != "resolve"] == [
        ("inject", "matcher-1"),
        ("rollback", "matcher-1"),
        ("verify", "matcher-1"),
    ]
    assert [f.status for f in journal.faults] == ["rolled_back"]
    assert any("press Ctrl-C again to skip" in e.message for e in journal.events)


@pytest.mark.parametrize("param", ["fail_rollback", "fail_verify"])
def test_failed_rollback_or_verification_exits_3(tmp_path: Path, param: str) -> None:
    method = f"- {{at: 10s, duration: 8s, kind: fake.break, target: matcher, params: {{{param}: true}}}}\n"
    journal, _ = run_fake(tmp_path, method)
    assert journal.verdict == "rollback_failed"
    assert journal.exit_code == ExitCode.ROLLBACK_FAILED
    assert journal.faults[0].status == "rollback_failed"
    assert "could NOT be rolled back" in journal.summary


def test_failed_injection_is_rolled_back_and_reported_as_error(tmp_path: Path) -> None:
    method = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher, params: {fail_inject: true}}\n"
    journal, world = run_fake(tmp_path, method)
    assert journal.verdict == "error"
    assert ("rollback", "matcher-1") in world.calls
    assert journal.faults[0].status == "rolled_back"
    assert journal.faults[0].error and "could not inject" in journal.faults[0].error


def test_unresolvable_target_fails_preflight_and_starts_nothing(tmp_path: Path) -> None:
    method = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher, params: {unresolvable: true}}\n"
    journal, world = run_fake(tmp_path, method)
    assert journal.verdict == "error"
    assert journal.exit_code == ExitCode.CANNOT_RUN
    assert journal.load is not None and journal.load.started_at is None
    assert [c[0] for c in world.calls] == ["resolve"]
    assert "preflight failed" in journal.errors[0].message


@pytest.mark.parametrize(("during_max", "ok"), [(0.6, True), (0.1, False)])
def test_during_tolerance_is_judged_per_fault_window(tmp_path: Path, during_max: float, ok: bool) -> None:
    steady = f"- {{name: error rate, metric: error_rate, max: 0.01, during: {{max: {during_max}}}}}\n"
    journal, _ = run_fake(tmp_path, ONE_FAULT, steady=steady)
    during = [c for c in journal.checks if c.phase == "during"]
    assert len(during) == 1 and during[0].fault_index == 1
    # Half the requests fail while the fault is in place, then 2 s of healing after the rollback.
    assert during[0].observed is not None and 0.4 <= during[0].observed <= 0.5
    assert during[0].ok is ok
    assert journal.verdict == ("passed" if ok else "deviated")


def test_events_reach_listeners_and_a_broken_listener_is_harmless(tmp_path: Path) -> None:
    seen: list[str] = []
    bus = EventBus()

    def broken(event: Event) -> None:
        raise ValueError("listener bug")

    bus.subscribe(broken)
    bus.subscribe(lambda e: seen.append(e.type))
    journal, _ = run_fake(tmp_path, ONE_FAULT, bus=bus)
    assert journal.verdict == "passed"
    for expected in (
        "run_started",
        "load_started",
        "fault_injected",
        "fault_rolled_back",
        "probe_observed",
        "run_finished",
    ):
        assert expected in seen


def test_an_abort_condition_rolls_everything_back_within_a_second_of_the_breach(tmp_path: Path) -> None:
    # Half the requests fail while the fault is in place (from +10s); the condition needs 2 whole seconds.
    abort = "abort_when:\n  - {metric: error_rate, above: 0.3, for: 2s}\n"
    journal, world = run_fake(tmp_path, ONE_FAULT, extra=abort)
    assert journal.verdict == "aborted" and journal.exit_code == ExitCode.DEVIATED
    assert "abort condition 'error_rate above 0.3 for 2s' held for 2s" in journal.summary
    (fault,) = journal.faults
    assert fault.status == "rolled_back" and not world.active  # undone, and verified
    assert fault.injected_at is not None and fault.ended_at is not None
    broken = sorted(p.t for p in journal.metrics["*"] if p.fail)
    breach_complete = broken[1] + 1  # the end of the second breached second
    # The runner sees a second once the load generator has written it; then at most one tick to act.
    assert 0 <= fault.ended_at - breach_complete <= 1.5, (fault.ended_at, breach_complete)
    assert fault.ended_at - fault.injected_at < 8  # long before its planned 8 s
    assert [p.status for p in journal.phases if p.name == "faults"] == ["aborted"]


def test_a_steady_state_probe_failing_long_enough_aborts_the_run(tmp_path: Path) -> None:
    # The steady state's own 'error rate' probe (max 0.01) fails from the injection on: 3 s of it abort.
    abort = "abort_when:\n  - {probe: error rate, for: 3s}\n"
    journal, world = run_fake(tmp_path, ONE_FAULT, extra=abort)
    assert journal.verdict == "aborted" and journal.exit_code == ExitCode.DEVIATED
    assert "abort condition 'probe 'error rate' failing for 3s' held for 3s" in journal.summary
    (fault,) = journal.faults
    assert fault.status == "rolled_back" and not world.active
    assert fault.ended_at is not None and fault.injected_at is not None
    assert 3 <= fault.ended_at - fault.injected_at < 6


def test_an_abort_condition_that_never_holds_long_enough_changes_nothing(tmp_path: Path) -> None:
    abort = "abort_when:\n  - {metric: error_rate, above: 0.3, for: 30s}\n"
    journal, _ = run_fake(tmp_path, ONE_FAULT, extra=abort + "objectives: {rto: 15s}\n")
    assert journal.verdict == "passed", journal.summary
