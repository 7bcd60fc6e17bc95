"""Journals of realistic fake runs for the report tests (what engine.runner writes, built by hand)."""

from __future__ import annotations

from typing import Any, Literal

from engine.journal import (
    CheckRecord,
    ErrorRecord,
    EventRecord,
    FaultRecord,
    Journal,
    LoadRecord,
    MetricPoint,
    ObjectiveRecord,
    PhaseRecord,
    RecoveryRecord,
    SteadyPoint,
)
from injectors.base import FaultPlan, TargetRef, TargetResult
from injectors.selection import Selection

Scenario = Literal["passed", "deviated", "rollback_failed", "baseline_deviated", "interrupted", "error"]
SCENARIOS: tuple[Scenario, ...] = (
    "passed",
    "deviated",
    "rollback_failed",
    "baseline_deviated",
    "interrupted",
    "error",
)

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


def make_journal(scenario: Scenario = "deviated", seconds: int = 60, faults: int = 1) -> Journal:
    """A run under `seconds` of load: baseline, process.kill of the matcher leader with a 4 s error spike.

    "deviated" is the realistic default: everything recovers, but the error rate during the fault
    exceeds its bound. `faults=2` adds a process.pause of redis that the run never reaches
    (use it with "interrupted" or "baseline_deviated").
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
        kill.recovery = RecoveryRecord(
            degraded_at=T0 + inject,
            recovered_at=T0 + inject + 5.0,
            rto_s=5.0,
            impact_s=SPIKE_S,
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
                observed=5.0,
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
        }
        verdict, summary = scenario, summaries[scenario]
        if scenario == "error":
            errors.append(
                ErrorRecord(t=T0 + inject + 3, phase="faults", type="RuntimeError", message="probe sampler crashed")
            )
    if faults > 1 and not baseline_bad:
        fault_records[1].status = "pending"  # never reached: only sensible with scenario "interrupted"
    events.append(EventRecord(t=T0 + stop + 0.2, type="run_finished", message=f"run finished: {verdict}"))
    return Journal(
        run_id="20251125T060000Z-r-test",
        tool_version="0.1.0",
        experiment_title="Matching engine survives loss of its leader under trading load",
        experiment_description="Kill the matcher leader while 200 traders place orders.",
        experiment_file="experiments/matcher-leader-kill.yaml",
        experiment_sha256="ab" * 32,
        experiment={"title": "Matching engine survives loss of its leader", "objectives": {"rto": 20.0}},
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
