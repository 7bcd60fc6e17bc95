"""Prometheus steady-state probes against a real Prometheus scraping a real target every second: the value read,
a value out of bounds failing its second, and every way a query gives no single number named, never read as 0."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.prometheus import PromQueryError, instant_query
from engine.events import EventBus
from engine.judge import LiveJudge
from engine.loader import load_document, validate_model
from engine.metrics import MetricStore
from engine.model import Experiment, PrometheusProbe
from engine.plan import check
from engine.probes import abort_probe, judge
from engine.prom_probe import NOT_CHECKED, PromSampler, second_failure
from tests.engine.fakes import FakeClock, FakeLoad, World, make_plan
from tests.support.helpers import free_port
from tests.support.prometheus import BearerGate, MetricsTarget, Prometheus, start_prometheus

FAULT = "- {at: 10s, duration: 8s, kind: fake.break, target: matcher}\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, MetricsTarget]]:
    target = MetricsTarget()
    target.set("queue_depth", 42.0)
    target.set('role{instance_name="a"}', 1.0)
    target.set('role{instance_name="b"}', 0.0)
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"), [target.address])
    try:
        server.wait_value("queue_depth", 42.0)
        yield server, target
    finally:
        server.stop()
        target.close()


def _probe(query: str, url: str, **bounds: float) -> PrometheusProbe:
    return PrometheusProbe.model_validate({"name": "depth", "prometheus": {"url": url, "query": query}, **bounds})


def test_the_value_is_read(prom: tuple[Prometheus, MetricsTarget]) -> None:
    server, _ = prom
    assert instant_query(server.url, "queue_depth", 2.0) == 42.0
    assert instant_query(server.url, "scalar(queue_depth) * 2", 2.0) == 84.0  # a scalar result is one number too


def test_no_series_several_series_and_a_bad_query_are_named(prom: tuple[Prometheus, MetricsTarget]) -> None:
    server, _ = prom
    with pytest.raises(PromQueryError, match="returned no series") as none:
        instant_query(server.url, "no_such_metric_anywhere", 2.0)
    assert none.value.kind == "result"
    with pytest.raises(PromQueryError, match=r'2 series where one is meant: .*instance_name="a"') as several:
        instant_query(server.url, "role", 2.0)
    assert several.value.kind == "result"
    with pytest.raises(PromQueryError, match="bad_data") as bad:
        instant_query(server.url, "sum(rate(queue_depth[1m])", 2.0)
    assert bad.value.bad_query


def test_a_non_2xx_answer_and_a_timeout_are_named(prom: tuple[Prometheus, MetricsTarget]) -> None:
    _, target = prom
    with pytest.raises(PromQueryError, match="HTTP 404"):
        instant_query(f"http://{target.address}", "up", 2.0)  # the target serves /metrics only
    with socket.socket() as silent:  # accepts connections (the kernel does) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        with pytest.raises(PromQueryError, match=r"no answer within 0.3s"):
            instant_query(f"http://127.0.0.1:{silent.getsockname()[1]}", "up", 0.3)


def test_the_token_is_sent_as_a_bearer_token(prom: tuple[Prometheus, MetricsTarget]) -> None:
    server, _ = prom
    gate = BearerGate(server.url, "s3cret-token")
    try:
        with pytest.raises(PromQueryError, match="unauthorized") as refused:
            instant_query(gate.url, "queue_depth", 2.0)
        assert "s3cret" not in str(refused.value)
        assert instant_query(gate.url, "queue_depth", 2.0, token="s3cret-token") == 42.0
        assert gate.seen == [None, "Bearer s3cret-token"]
    finally:
        gate.close()


def test_a_value_out_of_bounds_fails_its_second_and_an_unread_one_is_not_checked(
    prom: tuple[Prometheus, MetricsTarget],
) -> None:
    server, target = prom
    probe = _probe("queue_depth", server.url, max=50)
    sampler = PromSampler(probe, server.url, None)
    held = sampler.sample_once()
    assert held.value == 42.0 and held.error is None
    second = int(held.t)
    assert second_failure(sampler, second, (None, 50.0)) is None
    window = (held.t - 0.5, held.t + 0.5)
    check = judge(probe, "baseline", window, MetricStore(), {"depth": sampler})
    assert check is not None and check.status == "held" and check.observed == 42.0 and check.kind == "prometheus"

    target.set("queue_depth", 99.0)
    try:
        server.wait_value("queue_depth", 99.0)
        high = sampler.sample_once()
        assert second_failure(sampler, int(high.t), (None, 50.0)) == "depth"
        check = judge(probe, "baseline", (held.t - 0.5, high.t + 0.5), MetricStore(), {"depth": sampler})
        assert check is not None and check.status == "failed" and check.observed == 99.0
        assert check.detail.startswith("2 samples, 1 out of bounds")
    finally:
        target.set("queue_depth", 42.0)

    blind = PromSampler(_probe("no_such_metric_anywhere", server.url, max=50), server.url, None)
    unread = blind.sample_once()
    assert unread.value is None and unread.error == "the query returned no series"  # never a value of 0
    assert second_failure(blind, int(unread.t), (None, 50.0)) == "depth" + NOT_CHECKED
    check = judge(blind.probe, "baseline", (unread.t - 0.5, unread.t + 0.5), MetricStore(), {"depth": blind})
    assert check is not None and check.status == "not_checked" and check.observed is None
    assert "could not be read (last: the query returned no series)" in check.why
    assert [p.value for p in blind.series(0, float("inf"))] == [None]


def _judge(tmp_path: Path, steady: str, extra: str = "") -> tuple[LiveJudge, list[str]]:
    plan = make_plan(tmp_path, FAULT, extra=extra, steady=steady)
    clock = FakeClock()
    judge = LiveJudge(plan.experiment, FakeLoad(World(clock), 40.0), clock, EventBus())
    return judge, judge.prepare({}, plan.document.locator)


def test_preflight_names_a_bad_query_and_a_missing_token_at_their_lines(
    prom: tuple[Prometheus, MetricsTarget], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = prom
    monkeypatch.delenv("CHAOS_TEST_NO_SUCH_TOKEN", raising=False)
    steady = f"""\
- {{name: errors, metric: error_rate, max: 0.01}}
- name: depth
  prometheus: {{url: '{server.url}', query: 'sum(queue_depth'}}
  max: 50
- name: guarded
  prometheus: {{url: '{server.url}', query: queue_depth, token_env: CHAOS_TEST_NO_SUCH_TOKEN}}
  max: 50
"""
    _, problems = _judge(tmp_path, steady)
    assert len(problems) == 2, problems
    bad, token = problems
    assert bad.startswith(f"{tmp_path / 'exp.yaml'}:9:") and "'sum(queue_depth'" in bad and "bad_data" in bad
    assert token.startswith(f"{tmp_path / 'exp.yaml'}:12:")
    assert "CHAOS_TEST_NO_SUCH_TOKEN (token_env) is not set" in token


def test_abort_conditions_on_promql_and_on_a_prometheus_probe(
    prom: tuple[Prometheus, MetricsTarget], tmp_path: Path
) -> None:
    server, _ = prom
    query = f"{{url: '{server.url}', query: queue_depth}}"
    extra = f"abort_when:\n  - {{prometheus: {query}, above: 40, for: 2s}}\n  - {{probe: depth, for: 2s}}\n"
    steady = f"- {{name: errors, metric: error_rate, max: 0.01}}\n- {{name: depth, prometheus: {query}, max: 10}}\n"
    judge_, problems = _judge(tmp_path, steady, extra)
    assert problems == []
    on_query, on_probe = judge_.experiment.abort_when
    watched = abort_probe(judge_.experiment, on_query)
    assert isinstance(watched, PrometheusProbe) and watched.max == 40
    assert on_query.label == "PromQL 'queue_depth' above 40 for 2s"
    assert abort_probe(judge_.experiment, on_probe) is judge_.experiment.steady_state[1]
    for name, limit in ((on_query.label, 40.0), ("depth", 10.0)):
        sampler = judge_.samplers[name]
        assert isinstance(sampler, PromSampler)
        sample = sampler.sample_once()
        assert second_failure(sampler, int(sample.t), (None, limit)) == name  # 42 is beyond both: a breached second


def test_unknown_endpoints_in_prometheus_urls_are_found_at_validation(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("""\
version: 1
title: prometheus urls
load: {locustfile: fake.py, users: 5, spawn_rate: 5, duration: 60s, host: gateway}
steady_state:
  - {name: depth, prometheus: {url: '{nowhere}', query: queue_depth}, max: 5}
abort_when:
  - {prometheus: {url: '{prom}', query: queue_depth}, above: 5}
method:
  - {at: 20s, duration: 5s, kind: process.kill, target: matcher}
integrity: []
""")
    (tmp_path / "fake.py").write_text("# locustfile placeholder\n")
    doc = load_document(path)
    _, problems = check(validate_model(Experiment, doc), doc)
    found = [(p.line, p.message.partition(" (known: ")[0]) for p in problems]
    assert (5, "unknown endpoint {nowhere} in url") in found
    assert (7, "unknown endpoint {prom} in url") in found


def test_an_unreachable_prometheus_is_named() -> None:
    with pytest.raises(PromQueryError, match="cannot reach Prometheus") as unreachable:
        instant_query(f"http://127.0.0.1:{free_port()}", "up", 1.0)
    assert unreachable.value.kind == "server"
