"""End to end: a short experiment against a live reference stack, Locust load, a real leader kill."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine.errors import ExitCode
from engine.integrity import REFERENCE_CHECKS
from engine.journal import load_journal
from tradingstack.matcher import UNSAFE_WRITE_BEHIND_S

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.infra]


def shortened(experiment: str, **timeline: tuple[str, str]) -> str:
    """A shipped experiment with a shorter timeline (each `old=new` must match) and a lighter load."""
    text = (ROOT / "experiments" / experiment).read_text()
    changes = [*timeline.values(), ("users: 20", "users: 12")]
    changes.append(("locustfile: ../loadgen/trading.py", f"locustfile: {ROOT / 'loadgen' / 'trading.py'}"))
    for old, new in changes:
        assert old in text, f"{experiment} no longer contains {old!r}"
        text = text.replace(old, new)
    return text.replace("min: 20", "min: 10")  # a throughput floor, where there is one, for the lighter load


def run_experiment(tmp_path: Path, name: str, text: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run an experiment with its own fresh stack; its result and the journal's path."""
    experiment = tmp_path / name
    experiment.write_text(text)
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, str(ROOT / "chaos.py"), "run", str(experiment), "--stack-up", "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
        check=False,
    )
    journals = list(runs.glob("*/journal.json"))
    assert len(journals) == 1, result.stdout + result.stderr
    return result, journals[0]


def run_passing(tmp_path: Path, name: str, text: str) -> Path:
    """Run an experiment with its own fresh stack; it must pass. Returns the journal's path."""
    result, journal_path = run_experiment(tmp_path, name, text)
    assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
    return journal_path


def test_leader_kill_under_load_recovers_and_reports(tmp_path: Path) -> None:
    short = shortened(
        "matcher-leader-kill.yaml",
        load=("duration: 50s", "duration: 28s"),
        at=("at: 15s", "at: 9s"),
        fault=("duration: 15s                  # restarted", "duration: 8s                  # restarted"),
    )
    journal_path = run_passing(tmp_path, "leader-kill.yaml", short)
    journal = load_journal(journal_path)
    run_dir = journal_path.parent

    (fault,) = journal.faults
    assert fault.kind == "process.kill" and fault.status == "rolled_back"
    (killed,) = fault.inject
    assert killed.ok and killed.detail["signal"] == "SIGKILL"
    (restart,) = fault.rollback
    assert restart.ok and restart.detail["restarted"] is True and restart.detail["pid"] != killed.detail["pid"]
    assert fault.verify and all(v.ok for v in fault.verify)
    # The leader was killed: the kill hurt order entry, and the standby took over within the objective.
    assert fault.recovery is not None and fault.recovery.recovered
    assert fault.recovery.impact_s is not None and fault.recovery.impact_s >= 1
    assert fault.recovery.rto_s is not None and 0 < fault.recovery.rto_s <= 15
    assert [(o.name, o.met) for o in journal.objectives] == [("rto", True), ("rpo_orders", True)]
    errors_during = sum(p.fail for p in journal.metrics["*"] if fault.injected_at and p.t >= fault.injected_at - 1)
    assert errors_during > 0

    html = (run_dir / "report.html").read_text()
    assert "Passed" in html and "process.kill" in html and "<svg" in html
    suite = ET.parse(run_dir / "junit.xml").getroot()
    assert suite.find(".//testcase") is not None
    assert not list(suite.iter("failure"))
    # The stack started for the run was stopped again: its state file is gone, its logs stay.
    assert not (run_dir / "stack" / "state.json").exists()
    assert (run_dir / "stack" / "logs" / "gateway-1.log").exists()


def test_redis_link_latency_shows_in_order_latency_during_exactly_the_fault_window(tmp_path: Path) -> None:
    short = shortened(
        "redis-link-latency.yaml",
        load=("duration: 55s", "duration: 30s"),
        at=("at: 15s", "at: 9s"),
        fault=("duration: 20s", "duration: 10s"),
    )
    journal_path = run_passing(tmp_path, "redis-latency.yaml", short)
    journal = load_journal(journal_path)

    (fault,) = journal.faults
    assert fault.kind == "network.latency" and fault.status == "rolled_back"
    assert fault.plan is not None
    assert sorted(t.id for t in fault.plan.targets) == ["matcher-1->redis", "matcher-2->redis"]
    assert all(r.ok for r in fault.inject) and all(r.ok for r in fault.rollback) and all(v.ok for v in fault.verify)
    assert all(r.detail["removed"] for r in fault.rollback)  # exactly the toxics it added, each removed
    assert fault.injected_at is not None and fault.ended_at is not None

    def p50s(start: float, end: float) -> list[float]:
        return [p.p50 for p in journal.metrics["POST /orders"] if start <= p.t < end and p.p50 is not None]

    inside = p50s(fault.injected_at + 1, fault.ended_at - 1)
    before = p50s(0, fault.injected_at - 1)
    after = p50s(fault.ended_at + 2, float("inf"))
    assert inside and before and after
    # 200 ± 50 ms per Redis round trip: every second inside the window is slow, none outside it.
    assert min(inside) >= 150, inside
    assert max(before) < 100 and max(after) < 100, (before, after)
    assert fault.recovery is not None and fault.recovery.recovered

    html = (journal_path.parent / "report.html").read_text()
    assert "network.latency" in html and "Latency, POST /orders" in html


def test_redis_primary_loss_on_the_ha_stack_meets_its_rto_and_journals_the_failover(tmp_path: Path) -> None:
    short = shortened(
        "redis-primary-loss.yaml",
        load=("duration: 50s", "duration: 35s"),
        at=("at: 15s", "at: 9s"),
        fault=("duration: 15s ", "duration: 8s "),
    )
    journal_path = run_passing(tmp_path, "redis-primary-loss.yaml", short)
    journal = load_journal(journal_path)

    (fault,) = journal.faults
    assert fault.kind == "redis.kill_primary" and fault.status == "rolled_back"
    assert fault.plan is not None and [t.id for t in fault.plan.targets] == ["redis-1"]  # the primary at start
    # Sentinel needs down-after (1 s) plus its own election: a promotion faster than that was not a failover.
    assert 1.0 < fault.measured["promoted_after_s"] < 10
    assert fault.recovery is not None and fault.recovery.rto_s is not None and fault.recovery.rto_s <= 15
    assert [(o.name, o.met) for o in journal.objectives] == [("rto", True), ("rpo_orders", True)]
    assert all(v.ok for v in fault.verify)  # the old primary rejoined as a replica of the new one
    # Semi-synchronous acknowledgements: the failover lost nothing the customers were told was taken.
    assert journal.ledger is not None and journal.ledger.acknowledged > 100
    assert [(r.name, r.ok) for r in journal.integrity] == [(name, True) for name in REFERENCE_CHECKS]
    assert [(r.fault_index, r.lost) for r in journal.rpo] == [(1, 0)]
    html = (journal_path.parent / "report.html").read_text()
    assert "Promoted after" in html


def test_the_lossy_stack_fails_integrity_and_lists_the_orders_it_lost(tmp_path: Path) -> None:
    short = shortened(
        "lossy-leader-kill.yaml",
        load=("duration: 40s", "duration: 28s"),
        at=("at: 15s", "at: 9s"),
        fault=("duration: 10s", "duration: 6s"),
    )
    result, journal_path = run_experiment(tmp_path, "lossy.yaml", short)
    assert result.returncode == ExitCode.DEVIATED, result.stdout + result.stderr
    journal = load_journal(journal_path)
    (fault,) = journal.faults
    assert fault.status == "rolled_back" and fault.recovery is not None and fault.recovery.recovered
    persisted = next(r for r in journal.integrity if r.name == "acknowledged_orders_persisted")
    assert not persisted.ok and persisted.violations > 0 and persisted.error is None
    assert journal.lost_orders and all(o.found == "missing" and o.fault_index == 1 for o in journal.lost_orders)
    assert len(journal.lost_orders) == persisted.violations == sum(r.lost for r in journal.rpo)
    assert fault.injected_at is not None
    # Lost: what was acknowledged in the last write-behind interval before the kill (1.5 s; a little slack for
    # the write in flight and the clocks of two processes).
    window = UNSAFE_WRITE_BEHIND_S + 0.5
    assert all(fault.injected_at - window <= o.acked_at <= fault.injected_at + 0.5 for o in journal.lost_orders)
    assert [(o.name, o.met) for o in journal.objectives if o.name == "rpo_orders"] == [("rpo_orders", False)]
    assert "acknowledged order(s) lost of fault #1" in journal.summary
    html = (journal_path.parent / "report.html").read_text()
    assert journal.lost_orders[0].order_id in html
