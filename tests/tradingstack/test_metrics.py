"""The reference stack's Prometheus metrics, scraped from a real stack: orders by result, latency, roles, commits."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients.procs import role_of
from clients.toxiproxy import ToxiproxyClient
from stackspec.targets import LinkTarget, ProcessInstance, ProcessTarget, StackDescription
from tests.support.helpers import require_programs
from tests.tradingstack.support import call, place, wait_for
from tradingstack.describe import describe, metrics_urls
from tradingstack.launcher import read_state, start_stack, stop_stack

pytestmark = [pytest.mark.infra, pytest.mark.slow]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackDescription]:
    """A basic reference stack of its own, stopped (by the PIDs it recorded) at the end."""
    require_programs("redis-server", "java")
    directory = tmp_path_factory.mktemp("metrics-stack")
    try:
        start_stack(directory)
        description = read_state(directory)
        assert description is not None
        yield description
    finally:
        stop_stack(directory)


def scrape(url: str) -> Samples:
    """Every sample of a /metrics page, parsed by the official parser: (name, labels) → value."""
    with _http.open(url, timeout=5.0) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def urls(description: StackDescription) -> dict[str, str]:
    return {name: url for group in metrics_urls(description).values() for name, url in group.items()}


def matchers(description: StackDescription) -> list[ProcessInstance]:
    target = description.targets["matcher"]
    assert isinstance(target, ProcessTarget)
    return target.instances


def test_the_description_names_a_metrics_url_for_every_service(stack: StackDescription) -> None:
    found = metrics_urls(stack)
    assert {t: sorted(group) for t, group in found.items()} == {
        "gateway": ["gateway-1"],
        "matcher": ["matcher-1", "matcher-2"],
    }
    assert found["gateway"]["gateway-1"] == f"{stack.endpoints['gateway']}/metrics"
    assert {t: sorted(g) for t, g in metrics_urls(describe("basic")).items()} == {
        t: sorted(g) for t, g in found.items()
    }


def test_the_gateway_counts_orders_and_cancels_by_what_it_answered(stack: StackDescription) -> None:
    gw, url = stack.endpoints["gateway"], urls(stack)["gateway-1"]
    before = scrape(url)
    resting = [place(gw, f"ACC00{20 + n}", "600036", "buy", 10, 5.0 + n) for n in range(3)]
    assert [status for status, _ in resting] == [201, 201, 201]
    assert place(gw, "ACC0020", "600036", "buy", 0, 5.0)[0] == 400  # qty 0
    assert place(gw, "ACC0999", "600036", "buy", 10, 5.0)[0] == 404  # unknown account
    assert call("DELETE", f"{gw}/orders/{resting[0][1]['order_id']}")[0] == 200
    assert call("DELETE", f"{gw}/orders/{resting[0][1]['order_id']}")[0] == 409  # already cancelled
    after = scrape(url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    orders = {r: delta("trading_orders_total", result=r) for r in ("accepted", "rejected", "unavailable", "error")}
    assert orders == {"accepted": 3, "rejected": 2, "unavailable": 0, "error": 0}
    cancels = {r: delta("trading_cancels_total", result=r) for r in ("cancelled", "rejected", "unavailable", "error")}
    assert cancels == {"cancelled": 1, "rejected": 1, "unavailable": 0, "error": 0}
    assert delta("trading_order_latency_seconds_count") == 5  # accepted + rejected
    assert 0 < delta("trading_order_latency_seconds_sum") < 5 * 2.0
    assert value(after, "trading_order_latency_seconds_bucket", le="+Inf") == value(
        after, "trading_order_latency_seconds_count"
    )
    for gauge in ("trading_gateway_leader_reachable", "trading_redis_connected", "trading_zookeeper_connected"):
        assert value(after, gauge) == 1, gauge


def test_each_matcher_reports_its_role_epoch_and_the_orders_it_committed(stack: StackDescription) -> None:
    engines = {m.name: m for m in matchers(stack)}
    roles = {name: role_of(m) for name, m in engines.items()}
    assert sorted(str(role) for role in roles.values()) == ["follower", "leader"], roles
    leader = next(name for name, role in roles.items() if role == "leader")
    before = {name: scrape(urls(stack)[name]) for name in engines}
    gw = stack.endpoints["gateway"]
    assert [place(gw, "ACC0030", "601318", "sell", 5, 40.0 + n)[0] for n in range(4)] == [201] * 4
    after = {name: scrape(urls(stack)[name]) for name in engines}
    for name, role in roles.items():
        samples = after[name]
        assert {r: value(samples, "trading_matcher_role", role=r) for r in ("leader", "follower", "candidate")} == {
            r: float(r == role) for r in ("leader", "follower", "candidate")
        }, name
        assert value(samples, "trading_matcher_leader") == float(role == "leader"), name
        assert value(samples, "trading_redis_connected") == value(samples, "trading_zookeeper_connected") == 1
        role_url = engines[name].role_url
        assert role_url is not None
        assert value(samples, "trading_matcher_epoch") == call("GET", role_url)[1]["epoch"]

    def delta(name: str, metric: str) -> float:
        return value(after[name], metric) - value(before[name], metric)

    follower = next(name for name in engines if name != leader)
    assert value(after[leader], "trading_matcher_epoch") >= 1
    assert delta(leader, "trading_matcher_orders_matched_total") == 4
    assert delta(leader, "trading_matcher_orders_committed_total") == 4
    assert delta(leader, "trading_matcher_orders_failed_total") == 0
    assert delta(leader, "trading_matcher_commit_batch_size_sum") == 4  # one write per order
    assert 1 <= delta(leader, "trading_matcher_commit_batch_size_count") <= 4
    assert delta(follower, "trading_matcher_orders_matched_total") == 0


def test_a_cut_link_shows_in_the_gateway_s_results_and_gauges(stack: StackDescription) -> None:
    gw, url = stack.endpoints["gateway"], urls(stack)["gateway-1"]
    assert stack.toxiproxy is not None
    api = ToxiproxyClient(stack.toxiproxy.url)
    leader = next(m.name for m in matchers(stack) if role_of(m) == "leader")
    before = scrape(url)
    cut = f"gateway-1_to_{leader}"
    api.set_enabled(cut, False)
    try:
        assert place(gw, "ACC0040", "000002", "buy", 1, 1.0)[0] == 503
        during = scrape(url)
    finally:
        api.set_enabled(cut, True)
    assert value(during, "trading_gateway_leader_reachable") == 0
    unavailable = [value(s, "trading_orders_total", result="unavailable") for s in (before, during)]
    assert unavailable[1] - unavailable[0] == 1
    latency = "trading_order_latency_seconds_count"
    assert value(during, latency) == value(before, latency)  # an order nobody took is no latency sample
    wait_for("an order through the restored link", lambda: place(gw, "ACC0040", "000002", "buy", 1, 1.0)[0] == 201)
    assert value(scrape(url), "trading_gateway_leader_reachable") == 1

    redis_links = stack.targets["gateway->redis"]
    assert isinstance(redis_links, LinkTarget)
    proxy = redis_links.instances[0].proxy
    api.set_enabled(proxy, False)
    try:
        wait_for("trading_redis_connected 0", lambda: value(scrape(url), "trading_redis_connected") == 0, 5.0)
    finally:
        api.set_enabled(proxy, True)
    wait_for("trading_redis_connected 1", lambda: value(scrape(url), "trading_redis_connected") == 1, 5.0)
    assert value(scrape(url), "trading_zookeeper_connected") == 1
