"""`chaos.py run` with a Prometheus steady-state probe against a real Prometheus scraping a real target: the run
passes on it, its samples are journaled and charted, its bearer token is sent but never written anywhere; a
PromQL abort condition ends a run; a bad query is a preflight error at its line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import ExitCode
from engine.journal import load_journal
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tests.support.cli_world import only_journal, write_experiment
from tests.support.helpers import chaos
from tests.support.prometheus import BearerGate, MetricsTarget, Prometheus, start_prometheus

pytestmark = [pytest.mark.slow]

TOKEN = "prom-token-3b1f9e"  # a test token, looked for in every file the run writes


@pytest.fixture
def prom(tmp_path: Path) -> Iterator[tuple[Prometheus, MetricsTarget]]:
    target = MetricsTarget()
    target.set("queue_depth", 7.0)
    server = start_prometheus(tmp_path / "prometheus", [target.address])
    try:
        server.wait_value("queue_depth", 7.0)
        yield server, target
    finally:
        server.stop()
        target.close()


def _stack(world: dict[str, object], prom_url: str) -> StackDescription:
    web, svc = world["web"], world["svc"]
    assert isinstance(web, ProcessInstance) and isinstance(svc, list)
    return StackDescription(
        name="cli-prom",
        endpoints={"web": f"http://127.0.0.1:{web.ports['http']}", "prom": prom_url},
        targets={"svc": ProcessTarget(instances=svc), "web": ProcessTarget(instances=[web])},
        market_hours=None,
    )


def test_a_run_passes_on_a_prometheus_probe_with_a_bearer_token(
    world: dict[str, object], tmp_path: Path, prom: tuple[Prometheus, MetricsTarget], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = prom
    gate = BearerGate(server.url, TOKEN)
    monkeypatch.setenv("CHAOS_TEST_PROM_TOKEN", TOKEN)
    steady = (
        "  - {name: errors, metric: error_rate, max: 0.01}\n"
        "  - {name: queue depth, prometheus: {url: '{prom}', query: queue_depth, token_env: CHAOS_TEST_PROM_TOKEN},"
        " max: 50, during: {max: 100}}"
    )
    runs = tmp_path / "runs"
    try:
        experiment = write_experiment(world, steady=steady, stack=_stack(world, gate.url))
        result = chaos("run", str(experiment), "--runs-dir", str(runs))
    finally:
        gate.close()
    assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
    journal = load_journal(only_journal(runs))
    samples = journal.probes["queue depth"]
    assert len(samples) >= 8 and all(p.value == 7.0 and p.error is None for p in samples)
    checks = [c for c in journal.checks if c.probe == "queue depth"]
    assert {c.phase for c in checks} == {"baseline", "during", "recovery"}
    assert all(c.kind == "prometheus" and c.status == "held" and c.observed == 7.0 for c in checks)
    assert gate.seen and set(gate.seen) == {f"Bearer {TOKEN}"}
    report = (only_journal(runs).parent / "report.html").read_text()
    assert "Prometheus: queue depth" in report and "PromQL <code>queue_depth</code>" in report
    for path in tmp_path.rglob("*"):
        if path.is_file() and "prometheus" not in path.parts:
            assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in result.stdout + result.stderr


def test_a_promql_abort_condition_ends_the_run(
    world: dict[str, object], tmp_path: Path, prom: tuple[Prometheus, MetricsTarget]
) -> None:
    server, _ = prom
    query = f"{{url: '{server.url}', query: queue_depth}}"
    extra = f"abort_when:\n  - {{name: deep queue, prometheus: {query}, above: 5, for: 2s}}"
    steady = "  - {name: errors, metric: error_rate, max: 0.01}"
    runs = tmp_path / "runs"
    result = chaos("run", str(write_experiment(world, steady=steady, extra=extra)), "--runs-dir", str(runs))
    assert result.returncode == ExitCode.DEVIATED, result.stdout + result.stderr
    journal = load_journal(only_journal(runs))
    assert journal.verdict == "aborted", journal.summary
    assert "deep queue" in journal.summary
    assert journal.probes["deep queue"] and journal.probes["deep queue"][0].value == 7.0


def test_a_bad_query_is_a_preflight_error_at_its_line(
    world: dict[str, object], tmp_path: Path, prom: tuple[Prometheus, MetricsTarget]
) -> None:
    server, _ = prom
    steady = f"  - {{name: depth, prometheus: {{url: '{server.url}', query: 'rate(queue_depth[1m]'}}, max: 5}}"
    experiment = write_experiment(world, steady=steady)
    result = chaos("run", str(experiment), "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == ExitCode.CANNOT_RUN, result.stdout + result.stderr
    assert f"{experiment}:6:" in result.stderr + result.stdout
    assert "bad_data" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
