"""The runner's own metrics: synthetic events in, a real loopback endpoint scraped and parsed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from engine.errors import ExitCode, PreflightError
from engine.events import (
    FaultInjected,
    FaultRolledBack,
    PhaseFinished,
    PhaseStarted,
    ProbeObserved,
    RunFinished,
    RunStarted,
)
from engine.run_metrics import MetricsServer, RunMetrics, format_address, is_loopback
from tests.support.scrape import Series, scrape, value


@pytest.fixture
def served() -> Iterator[MetricsServer]:
    metrics = RunMetrics(probes=["errors", "web health"], faults=[(1, "process.kill", "svc")])
    server = MetricsServer(metrics, "127.0.0.1", 0)
    yield server
    server.close()


def _now(server: MetricsServer) -> Series:
    return scrape(server.url)


def test_the_series_follow_the_runs_events(served: MetricsServer) -> None:
    emit = served.metrics.listen
    before = _now(served)
    assert value(before, "chaos_fault_active", index="1", kind="process.kill", target="svc") == 0
    assert value(before, "chaos_faults_injected_total") == 0
    assert value(before, "chaos_run_finished") == 0
    assert value(before, "chaos_steady_state_ok", probe="errors") is None  # never "ok" before a sample
    assert all(value(before, "chaos_run_phase", phase=p) == 0 for p in ("preflight", "baseline", "faults"))

    emit(RunStarted(run_id="r-1", title="svc survives", seed=7))
    emit(PhaseStarted(phase="preflight"))
    emit(PhaseFinished(phase="preflight", status="ok"))
    emit(PhaseStarted(phase="baseline"))
    emit(ProbeObserved(second=10.0, ok=True, failing=[]))
    s = _now(served)
    assert value(s, "chaos_run_info", run_id="r-1", experiment="svc survives") == 1
    assert value(s, "chaos_run_phase", phase="baseline") == 1
    assert value(s, "chaos_run_phase", phase="preflight") == 0
    assert value(s, "chaos_steady_state_ok", probe="errors") == 1
    assert value(s, "chaos_steady_state_ok", probe="web health") == 1

    emit(PhaseFinished(phase="baseline", status="ok"))
    emit(PhaseStarted(phase="faults"))
    emit(FaultInjected(index=1, kind="process.kill", target="svc", targets=["svc-1"], ok=True))
    emit(ProbeObserved(second=12.0, ok=False, failing=["web health"]))
    s = _now(served)
    assert value(s, "chaos_run_phase", phase="faults") == 1 and value(s, "chaos_run_phase", phase="baseline") == 0
    assert value(s, "chaos_fault_active", index="1", kind="process.kill", target="svc") == 1
    assert value(s, "chaos_faults_injected_total") == 1
    assert value(s, "chaos_steady_state_ok", probe="web health") == 0
    assert value(s, "chaos_steady_state_ok", probe="errors") == 1

    emit(FaultRolledBack(index=1, kind="process.kill", ok=True, verified=True))
    emit(PhaseFinished(phase="faults", status="ok"))
    emit(PhaseStarted(phase="recovery"))
    emit(ProbeObserved(second=15.0, ok=False, failing=["no requests completed"]))
    s = _now(served)
    assert value(s, "chaos_fault_active", index="1", kind="process.kill", target="svc") == 0
    assert value(s, "chaos_run_phase", phase="recovery") == 1
    # A second without any completed request: no probe can be said to hold.
    assert value(s, "chaos_steady_state_ok", probe="errors") == 0

    emit(PhaseFinished(phase="recovery", status="ok"))
    emit(PhaseStarted(phase="verdict"))
    emit(PhaseFinished(phase="verdict", status="ok"))
    emit(RunFinished(verdict="passed", exit_code=0, summary="all held"))
    s = _now(served)
    assert value(s, "chaos_run_finished") == 1 and value(s, "chaos_run_exit_code") == 0
    assert value(s, "chaos_run_verdict", verdict="passed") == 1
    assert value(s, "chaos_run_verdict", verdict="deviated") == 0
    assert not any(value(s, "chaos_run_phase", phase=p) for p in ("baseline", "faults", "recovery", "verdict"))


def test_a_fault_whose_rollback_failed_stays_active(served: MetricsServer) -> None:
    emit = served.metrics.listen
    emit(FaultInjected(index=1, kind="process.kill", target="svc", targets=["svc-1"], ok=True))
    emit(FaultRolledBack(index=1, kind="process.kill", ok=True, verified=False, error="still down"))
    assert value(_now(served), "chaos_fault_active", index="1", kind="process.kill", target="svc") == 1


def test_a_failed_injection_is_not_counted(served: MetricsServer) -> None:
    served.metrics.listen(FaultInjected(index=1, kind="process.kill", target="svc", targets=[], ok=False, error="x"))
    s = _now(served)
    assert value(s, "chaos_faults_injected_total") == 0
    assert value(s, "chaos_fault_active", index="1", kind="process.kill", target="svc") == 0


def test_a_probe_that_could_not_be_read_is_not_ok(served: MetricsServer) -> None:
    served.metrics.listen(ProbeObserved(second=3.0, ok=False, failing=["web health (not checked)"]))
    s = _now(served)
    assert value(s, "chaos_steady_state_ok", probe="web health") == 0
    assert value(s, "chaos_steady_state_ok", probe="errors") == 1


def test_a_port_in_use_is_a_preflight_error_and_close_frees_the_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PreflightError) as caught:
            MetricsServer(RunMetrics(), "127.0.0.1", port)
    assert caught.value.exit_code == ExitCode.CANNOT_RUN
    assert f"127.0.0.1:{port}" in str(caught.value) and "nothing was started" in str(caught.value)
    server = MetricsServer(RunMetrics(), "127.0.0.1", port)  # free again: the refused attempt kept nothing
    assert server.address == f"127.0.0.1:{port}"
    server.close()
    server.close()  # idempotent
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the scrapes' TIME_WAIT is no listener
        again.bind(("127.0.0.1", port))  # closing freed it


def test_loopback_and_address_formatting() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("metrics.example")
    assert format_address("::1", 9464) == "[::1]:9464" and format_address("127.0.0.1", 1) == "127.0.0.1:1"
