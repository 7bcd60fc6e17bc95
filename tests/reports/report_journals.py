"""Journals of realistic fake runs for the report tests (what engine.runner writes, built by hand)."""

from __future__ import annotations

from typing import Any, Literal

from engine.journal import (
    CheckRecord,
    ErrorRecord,
    EventRecord,
    FaultRecord,
    IntegrityRecord,
    Journal,
    LedgerRecord,
    LoadRecord,
    LostOrder,
    MetricPoint,
    ObjectiveRecord,
    PhaseRecord,
    RecoveryRecord,
    RpoRecord,
    SteadyPoint,
)
from injectors.base import FaultPlan, TargetRef, TargetResult
from injectors.selection import Selection

Scenario = Literal["passed", "deviated", "rollback_failed", "baseline_deviated", "interrupted", "error", "lost_orders"]
SCENARIOS: tuple[Scenario, ...] = (
    "passed",
    "deviated",
    "rollback_failed",
    "baseline_deviated",
    "interrupted",
    "error",
    "lost_orders",
)
# Scenarios whose journal has the integrity phase's records; the others look like older journals without them.
WITH_INTEGRITY: tuple[Scenario, ...] = ("passed", "lost_orders")
INVARIANTS = {
    "acknowledged_orders_persisted": "Every order the gateway acknowledged is in the store, as acknowledged.",
    "no_duplicate_order_ids": "Each (account, client order id) names one order, and that order carries it.",
    "no_double_fills": "Every fill is recorded once, on both its orders, and fills add up to the filled quantity.",
    "balances_conserved": "Total cash and shares over all accounts equal the seeded totals.",
    "book_not_crossed": "In each symbol's open book the best bid is below the best ask.",
}
ACKNOWLEDGED = 11_873  # orders the load generator saw acknowledged in the default 60 s run
CANCELS = 1_204
LEDGER_FILES = [f"runs/20251125T060000Z-r-test/ledger/worker-{n}.jsonl" for n in range(1, 4)]
LOST = 37  # acknowledged orders the "lost_orders" scenario loses in fault #1

T0 = 1_764_050_000.0
LOAD_OFFSET = 2.0  # preflight takes two seconds before the load starts
SPIKE_S = 4  # the kill hurts the steady state for four seconds
KILL_PID = 4242
ORDERS = "POST /orders"


def fault_offset(seconds: int) -> float:
    """When fault #1 is injected, in seconds since the run's start."""
    return LOAD_OFFSET + max(20, seconds // 3)


def _metrics(seconds: int, inject: float | None, end: int) -> dict[str, list[MetricPoint]]:
    everything: list[MetricPoint] = []
    orders: list[MetricPoint] = []
    for i in range(end):
        t = T0 + LOAD_OFFSET + i
        wobble = (i * 7919) % 13
        n, fail, p50, p95, p99 = 400 + wobble, wobble % 2, 8.0 + wobble / 4, 24.0 + wobble, 41.0 + wobble
        into_fault = None if inject is None else t - (T0 + inject)
        if into_fault is not None and 0 <= into_fault < SPIKE_S:
            n, fail = 180, 60 + 30 * int(into_fault)
            p50, p95, p99 = 120.0, 640.0, 910.0 + 10 * into_fault
        point: dict[str, Any] = {"t": t, "n": n, "fail": fail, "p50": p50, "p95": p95, "p99": p99}
        point["max"] = p99 * 1.3
        point["users"] = 200
        if into_fault is not None and int(into_fault) == 2:
            point.update(fail=n, p50=None, p95=None, p99=None, max=None)  # every request failed: no latency
        everything.append(MetricPoint(**point))
        orders.append(MetricPoint(**{**point, "n": point["n"] // 2, "fail": point["fail"] // 2}))
    return {"*": everything, ORDERS: orders}


def _check(probe: str, phase: Any, window: tuple[float, float], ok: bool, observed: float, **kw: Any) -> CheckRecord:
    return CheckRecord(
        probe=probe,
        phase=phase,
        window=window,
        ok=ok,
        observed=observed,
        samples=int(window[1] - window[0]),
        **kw,
    )


def _checks(phase: Any, window: tuple[float, float], deviate: str = "", fault: int | None = None) -> list[CheckRecord]:
    during = phase == "during"
    p99_ok, err_ok = deviate != "p99", deviate != "error rate"
    return [
        _check(
            "order entry p99",
            phase,
            window,
            p99_ok,
            45.0 if p99_ok else 212.4,
            kind="metric",
            metric="latency_p99_ms",
            request=ORDERS,
            max=1000.0 if during else 150.0,
            fault_index=fault,
        ),
        _check(
            "error rate",
            phase,
            window,
            err_ok,
            0.004 if err_ok else 0.112,
            kind="metric",
            metric="error_rate",
            max=0.05 if during else 0.01,
            fault_index=fault,
        ),
        _check(
            "gateway health",
            phase,
            window,
            True,
            0.0,
            kind="http",
            metric="failure_rate",
            max=0.5 if during else 0.0,
            fault_index=fault,
        ),
    ]


def _result(action: Any, at: float, ok: bool = True, error: str | None = None, **detail: Any) -> TargetResult:
    return TargetResult(
        id="matcher-1",
        action=action,
        ok=ok,
        started_at=T0 + at,
        finished_at=T0 + at + 0.25,
        detail=detail,
        error=error,
    )


def _lost_orders(count: int, inject: float) -> list[LostOrder]:
    """Orders acknowledged in the half second before the matcher died that the store never got (or got wrong)."""
    symbols = (("600000", 7.8), ("600036", 35.2), ("601318", 48.5), ("000001", 11.3), ("000002", 8.9))
    lost = []
    for i in range(count):
        symbol, price = symbols[i % len(symbols)]
        acked = T0 + inject - 0.5 + 0.5 * i / max(count - 1, 1)
        lost.append(
            LostOrder(
                order_id=str(90_412 + 3 * i),
                client_order_id=f"lg-w{i % 3 + 1}-{18_000 + i}" if i % 4 else None,
                account=f"ACC{i * 7 % 100 + 1:04d}",
                symbol=symbol,
                side="buy" if i % 2 else "sell",
                qty=100 * (i % 5 + 1),
                price=price + (i % 3) / 100,
                acked_at=acked,
                fault_index=1,
                found="missing" if i % 10 else "status rejected, acknowledged as new",
            )
        )
    return lost


def _integrity(lost: list[LostOrder]) -> list[IntegrityRecord]:
    """The five built-in checks; `acknowledged_orders_persisted` fails when orders were lost."""
    checked = {
        "acknowledged_orders_persisted": ACKNOWLEDGED,
        "no_duplicate_order_ids": ACKNOWLEDGED - len(lost),
        "no_double_fills": ACKNOWLEDGED - len(lost),
        "balances_conserved": 100,
        "book_not_crossed": 5,
    }
    records: list[IntegrityRecord] = []
    for name, description in INVARIANTS.items():
        violated = name == "acknowledged_orders_persisted" and bool(lost)
        examples = [
            {
                "order_id": o.order_id,
                "client_order_id": o.client_order_id,
                "account": o.account,
                "expected": f"{o.side} {o.qty} {o.symbol} @ {o.price:g}",
                "found": o.found,
            }
            for o in (lost[:20] if violated else [])
        ]
        records.append(
            IntegrityRecord(
                name=name,
                description=description,
                ok=not violated,
                checked=checked[name],
                violations=len(lost) if violated else 0,
                examples=examples,
                took_s=0.012 * (len(records) + 1),
            )
        )
    return records


def add_integrity(journal: Journal, lost: int = 0) -> Journal:
    """Give a journal what the integrity phase records: checks, ledger, lost orders, RPO per fault."""
    inject = fault_offset(int(journal.load.duration_s if journal.load else 60))
    orders = _lost_orders(lost, inject)
    journal.integrity = _integrity(orders)
    journal.ledger = LedgerRecord(
        files=LEDGER_FILES, acknowledged=ACKNOWLEDGED, cancels_acknowledged=CANCELS, unreadable_lines=1
    )
    journal.lost_orders = orders[:200]  # the journal lists at most 200
    journal.rpo = [
        RpoRecord(
            fault_index=1,
            lost=lost,
            first_acked_at=orders[0].acked_at if orders else None,
            last_acked_at=orders[-1].acked_at if orders else None,
        ),
        RpoRecord(fault_index=None, lost=0),
    ]
    journal.objectives.append(
        ObjectiveRecord(
            name="rpo_orders",
            target=0,
            observed=lost,
            unit="orders",
            met=lost == 0,
            fault_index=1,
            detail=f"{lost} of the orders acknowledged during the fault were lost" if lost else "",
        )
    )
    journal.experiment["objectives"]["rpo_orders"] = 0
    end = journal.finished_at or T0
    journal.phases.append(
        PhaseRecord(
            name="integrity",
            started_at=end - 0.2,
            finished_at=end - 0.02,
            status="deviated" if lost else "ok",
            detail="acknowledged_orders_persisted" if lost else "",
        )
    )
    return journal


def make_journal(scenario: Scenario = "deviated", seconds: int = 60, faults: int = 1, lost: int = LOST) -> Journal:
    """A run under `seconds` of load: baseline, process.kill of the matcher leader with a 4 s error spike.

    "deviated" is the realistic default: everything recovers, but the error rate during the fault
    exceeds its bound. `faults=2` adds a process.pause of redis that the run never reaches
    (use it with "interrupted" or "baseline_deviated").

    "passed" and "lost_orders" carry the integrity phase's records (the others look like journals of
    runs without integrity checks): "passed" with every invariant holding and no order lost,
    "lost_orders" with `lost` acknowledged orders lost in fault #1 (verdict "deviated").
    """
    load_end = LOAD_OFFSET + seconds
    baseline_window = (T0 + LOAD_OFFSET + 5, T0 + LOAD_OFFSET + 18)
    inject = fault_offset(seconds)
    ended = inject + 10.8
    baseline_bad = scenario == "baseline_deviated"
    interrupted = scenario == "interrupted"
    stop = baseline_window[1] - T0 if baseline_bad else (ended + 5 if interrupted else load_end)
    stop_i = int(stop - LOAD_OFFSET)

    events = [
        EventRecord(t=T0, type="run_started", message="run r-test started (seed 7)"),
        EventRecord(t=T0 + 0.01, type="phase_started", message="preflight started"),
        EventRecord(t=T0 + LOAD_OFFSET, type="load_started", message="load started: 200 users for 60s"),
    ]
    phases = [
        PhaseRecord(name="preflight", started_at=T0, finished_at=T0 + LOAD_OFFSET, status="ok"),
        PhaseRecord(
            name="baseline",
            started_at=T0 + LOAD_OFFSET,
            finished_at=baseline_window[1],
            status="deviated" if baseline_bad else "ok",
            detail="order entry p99" if baseline_bad else "",
        ),
    ]
    kill = FaultRecord(
        index=1,
        kind="process.kill",
        target="matcher",
        at_s=inject - LOAD_OFFSET,
        duration_s=10.0,
        params={"signal": "SIGKILL", "exit_timeout_s": 10.0, "ready_timeout_s": 20.0},
    )
    fault_records = [kill]
    if faults > 1:
        fault_records.append(
            FaultRecord(index=2, kind="process.pause", target="redis", at_s=inject + 20, duration_s=10.0, params={})
        )
    checks = _checks("baseline", baseline_window, "p99" if baseline_bad else "")
    objectives: list[ObjectiveRecord] = []
    errors: list[ErrorRecord] = []
    steady_bad = set()

    if baseline_bad:
        for record in fault_records:
            record.status = "skipped"
        phases.append(
            PhaseRecord(
                name="faults",
                started_at=baseline_window[1],
                finished_at=baseline_window[1],
                status="skipped",
                detail="the steady state did not hold before any fault",
            )
        )
        verdict, summary = (
            "deviated",
            "The steady state did not hold before any fault, so nothing was injected.",
        )
    else:
        kill.plan = FaultPlan(
            kind="process.kill",
            target="matcher",
            params=kill.params,
            select=Selection(role="leader"),
            seed=7,
            targets=[TargetRef(id="matcher-1", detail={"pid": KILL_PID})],
        )
        kill.scheduled_at, kill.injected_at, kill.ended_at = T0 + inject, T0 + inject + 0.01, T0 + ended
        kill.inject = [_result("inject", inject, pid=KILL_PID, signal="SIGKILL", exited_after_s=0.004)]
        rolled_ok = scenario != "rollback_failed"
        kill.rollback = [
            _result("rollback", inject + 10, restarted=True, pid=KILL_PID + 7, ready_after_s=0.4)
            if rolled_ok
            else _result("rollback", inject + 10, ok=False, error="SpawnError: matcher-1 exited with status 1")
        ]
        kill.verify = [
            _result("verify", inject + 10.5, pid=KILL_PID + 7)
            if rolled_ok
            else _result("verify", inject + 10.5, ok=False, error="FaultStillPresentError: matcher-1 is not running")
        ]
        kill.status = "rolled_back" if rolled_ok else "rollback_failed"
        kill.error = None if rolled_ok else "matcher-1: SpawnError: matcher-1 exited with status 1"
        # The second T0+inject holds the injection (at +0.01 s): the kill's impact starts in it, clamped to it.
        kill.recovery = RecoveryRecord(
            degraded_at=kill.injected_at,
            degraded_straddles=True,
            recovered_at=T0 + inject + 5.0,
            recovered_in_window=True,
            settled_at=kill.ended_at,
            from_start_s=4.99,
            impact_s=4.99,
            after_end_s=0.0,
            rto_s=4.99,
            deviating_seconds=SPIKE_S,
            recovered=True,
            detail="steady state held for 3 s from +5.0s",
        )
        steady_bad = {int(inject - LOAD_OFFSET) + k for k in range(SPIKE_S)}
        events += [
            EventRecord(t=T0 + inject, type="fault_injected", message="#1 process.kill matcher: matcher-1"),
            EventRecord(
                t=T0 + inject + 1,
                type="probe_observed",
                message="steady state deviated: error rate",
                data={"failing": ["error rate"]},
            ),
            EventRecord(t=T0 + inject + 5, type="probe_observed", message="steady state held"),
            EventRecord(t=T0 + ended, type="fault_rolled_back", message="#1 process.kill rolled back and verified"),
        ]
        window = (T0 + inject, T0 + ended)
        checks += _checks("during", window, "error rate" if scenario == "deviated" else "", fault=1)
        if not interrupted:
            checks += _checks("recovery", (T0 + ended, T0 + load_end))
        objectives.append(
            ObjectiveRecord(
                name="rto",
                target=20.0,
                observed=4.99,
                unit="s",
                met=True,
                fault_index=1,
                detail=kill.recovery.detail,
            )
        )
        phases.append(
            PhaseRecord(
                name="faults",
                started_at=baseline_window[1],
                finished_at=T0 + stop,
                status="interrupted" if interrupted else "ok",
            )
        )
        phases.append(
            PhaseRecord(
                name="rollback",
                started_at=T0 + stop,
                finished_at=T0 + stop + 0.1,
                status="ok" if rolled_ok else "failed",
            )
        )
        summaries = {
            "passed": "The steady state held before and after the faults. #1 process.kill on matcher recovered in 5s.",
            "deviated": "The hypothesis deviated: error rate (during fault #1) was 0.112, expected <= 0.05.",
            "rollback_failed": "fault(s) #1 process.kill on matcher could NOT be rolled back: check the system now.",
            "interrupted": "Interrupted by SIGINT; every injected fault was rolled back.",
            "error": "The experiment could not run as planned: probe sampler crashed",
            "lost_orders": f"Data integrity violated: acknowledged_orders_persisted ({lost} of {ACKNOWLEDGED} "
            f"acknowledged orders lost in #1 process.kill on matcher). The steady state held.",
        }
        verdict, summary = ("deviated" if scenario == "lost_orders" else scenario), summaries[scenario]
        if scenario == "error":
            errors.append(
                ErrorRecord(t=T0 + inject + 3, phase="faults", type="RuntimeError", message="probe sampler crashed")
            )
    if faults > 1 and not baseline_bad:
        fault_records[1].status = "pending"  # never reached: only sensible with scenario "interrupted"
    events.append(EventRecord(t=T0 + stop + 0.2, type="run_finished", message=f"run finished: {verdict}"))
    journal = Journal(
        run_id="20251125T060000Z-r-test",
        tool_version="0.1.0",
        experiment_title="Matching engine survives loss of its leader under trading load",
        experiment_description="Kill the matcher leader while 200 traders place orders.",
        experiment_file="experiments/matcher-leader-kill.yaml",
        experiment_sha256="ab" * 32,
        experiment={"title": "Matching engine survives loss of its leader", "objectives": {"rto": 20.0}},
        stack={"name": "reference", "profile": "basic", "trading": True},
        seed=7,
        started_at=T0,
        finished_at=T0 + stop + 0.3,
        verdict=verdict,
        exit_code=0 if verdict == "passed" else 1,
        summary=summary,
        load=LoadRecord(
            locustfile="loadgen/trading.py",
            users=200,
            spawn_rate=50.0,
            duration_s=float(seconds),
            host="gateway",
            started_at=T0 + LOAD_OFFSET,
            finished_at=T0 + stop,
            exit_code=0,
        ),
        phases=phases,
        events=events,
        faults=fault_records,
        checks=checks,
        objectives=objectives,
        metrics=_metrics(seconds, None if baseline_bad else inject, stop_i),
        steady=[
            SteadyPoint(
                t=T0 + LOAD_OFFSET + i,
                ok=i not in steady_bad,
                failing=["error rate", "order entry p99"] if i in steady_bad else [],
            )
            for i in range(stop_i)
        ],
        errors=errors,
    )
    if scenario in WITH_INTEGRITY:
        add_integrity(journal, lost if scenario == "lost_orders" else 0)
    return journal
