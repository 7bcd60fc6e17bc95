"""The reference stack for real: up, HTTP API, leader failover (SIGKILL, SIGSTOP + fencing), status, down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from clients.audit import invariant, run_audit
from clients.health import problem, wait_healthy
from clients.procs import is_running, reap, role_of, spawn
from clients.toxiproxy import ToxiproxyClient
from engine.stack import reference_endpoints, reference_targets
from stackspec.targets import LinkTarget, ProcessInstance, ProcessTarget, StackDescription
from tests.support.helpers import require_programs
from tests.tradingstack.support import call, cli, place, shape, wait_for
from tradingstack.describe import describe
from tradingstack.launcher import StackRunningError, read_state, start_stack, stop_stack, write_state
from tradingstack.orders import SEED_CASH_CENTS, SEED_SHARES, SYMBOLS
from tradingstack.store import Store, connect

pytestmark = [pytest.mark.infra, pytest.mark.slow]

LINKS = ("matcher->redis", "matcher->zookeeper", "gateway->redis", "gateway->zookeeper", "gateway->matcher")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One reference stack for the whole module, always stopped at the end."""
    require_programs("redis-server", "java")
    directory = tmp_path_factory.mktemp("stack")
    started = time.monotonic()
    try:
        start_stack(directory)
        print(f"\nstack up in {time.monotonic() - started:.2f} s")
        yield directory
    finally:
        stop_stack(directory)


def state(directory: Path) -> StackDescription:
    description = read_state(directory)
    assert description is not None
    return description


def matchers(directory: Path) -> list[ProcessInstance]:
    target = state(directory).targets["matcher"]
    assert isinstance(target, ProcessTarget)
    return target.instances


def the_leader(directory: Path) -> ProcessInstance:
    leaders = [m for m in matchers(directory) if role_of(m) == "leader"]
    assert len(leaders) == 1, f"expected one leader, got {[m.name for m in leaders]}"
    return leaders[0]


def totals(directory: Path) -> tuple[int, dict[str, int]]:
    async def read() -> tuple[int, dict[str, int]]:
        store = Store(connect(state(directory).endpoints["redis"]))
        try:
            return await store.totals()
        finally:
            await store.close()

    return asyncio.run(read())


def test_up_writes_a_stack_description(stack: Path) -> None:
    description = StackDescription.model_validate_json((stack / "state.json").read_text())
    assert (description.name, description.profile) == ("reference", "basic")
    processes = {name: t for name, t in description.targets.items() if isinstance(t, ProcessTarget)}
    assert set(processes) == {"redis", "zookeeper", "toxiproxy", "matcher", "gateway"}
    assert set(description.targets) - set(processes) == set(LINKS)
    assert set(description.endpoints) == {"gateway", "redis", "zookeeper"}
    assert description.endpoints["gateway"].startswith("http://127.0.0.1:")
    for target in processes.values():
        for instance in target.instances:
            assert is_running(instance), instance.name
            assert instance.start_time is not None and instance.health is not None and instance.ports
            assert Path(instance.argv[0]).is_absolute() and instance.log and Path(instance.log).exists()
    engines = matchers(stack)
    assert [m.name for m in engines] == ["matcher-1", "matcher-2"]
    assert all(m.argv[0] == sys.executable and m.role_url for m in engines)


def test_describe_and_the_engine_know_the_started_stack_s_names_and_kinds(stack: Path) -> None:
    description = state(stack)
    assert shape(description) == shape(describe("basic"))
    assert {name: t.kind for name, t in description.targets.items()} == reference_targets("basic")
    assert set(description.endpoints) == reference_endpoints("basic")


def test_the_declared_audit_checks_the_live_stack(stack: Path) -> None:
    """What the engine runs for the integrity checks: the command in the description, nothing of its own."""
    audit = state(stack).audit
    assert audit is not None and audit.argv[1:5] == ["-m", "tradingstack", "audit", "--dir"]
    report = run_audit(audit)
    names = ("no_double_fills", "no_duplicate_order_ids", "balances_conserved", "book_not_crossed")
    assert [invariant(report, name).violations for name in names] == [0, 0, 0, 0]
    assert invariant(report, "balances_conserved").checked == 100  # every seeded account


def test_every_instance_is_healthy_and_status_exits_0(stack: Path) -> None:
    for target in state(stack).targets.values():
        for instance in target.instances if isinstance(target, ProcessTarget) else []:
            assert instance.health is not None and problem(instance.health) is None, instance.name
    result = cli("status", "--dir", str(stack))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "leader" in result.stdout and "follower" in result.stdout
    report = json.loads(cli("status", "--dir", str(stack), "--json").stdout)
    assert report["healthy"] is True
    kinds = [(row["pid"] is None, row["target"]) for row in report["instances"]]
    assert len([k for k in kinds if not k[0]]) == 6  # processes
    assert {target for is_link, target in kinds if is_link} == set(LINKS)


def test_every_service_link_runs_through_its_own_proxy(stack: Path) -> None:
    description = state(stack)
    assert description.toxiproxy is not None
    proxies = ToxiproxyClient(description.toxiproxy.url).proxies()
    processes = {i.name: i for t in description.targets.values() if isinstance(t, ProcessTarget) for i in t.instances}
    servers = {"redis": processes["redis"].ports["client"], "zookeeper": processes["zookeeper"].ports["client"]}
    servers |= {name: processes[name].ports["http"] for name in ("matcher-1", "matcher-2")}
    seen = []
    for name in LINKS:
        group = description.targets[name]
        assert isinstance(group, LinkTarget)
        for link in group.instances:
            proxy = proxies[link.proxy]
            assert proxy.enabled and not proxy.toxics and proxy.listen == link.listen, link.name
            assert link.client is not None and link.server is not None
            assert proxy.upstream == link.upstream == f"127.0.0.1:{servers[link.server]}", link.name
            client = processes[link.client]
            assert link.listen.rsplit(":", 1)[1] in " ".join(client.argv), f"{client.name} is not routed via the proxy"
            seen.append(link.name)
    assert sorted(seen) == sorted(
        [
            "matcher-1->redis",
            "matcher-2->redis",
            "matcher-1->zookeeper",
            "matcher-2->zookeeper",
            "gateway-1->redis",
            "gateway-1->zookeeper",
            "gateway-1->matcher-1",
            "gateway-1->matcher-2",
        ]
    )


def test_cutting_one_link_breaks_only_the_path_through_it(stack: Path) -> None:
    description = state(stack)
    assert description.toxiproxy is not None
    api = ToxiproxyClient(description.toxiproxy.url)
    gw = description.endpoints["gateway"]
    leader = the_leader(stack)
    cut = f"gateway-1_to_{leader.name}"
    api.set_enabled(cut, False)
    try:
        status, body = place(gw, "ACC0051", "600000", "buy", 1, 1.0)
        assert status == 503 and leader.name in body["error"], body
        assert the_leader(stack).name == leader.name  # the matcher's own links are untouched
        assert cli("status", "--dir", str(stack)).returncode == 1
    finally:
        api.set_enabled(cut, True)
    wait_for("order entry once the link is back", lambda: place(gw, "ACC0051", "600000", "buy", 1, 1.0)[0] == 201)


def test_exactly_one_matcher_leads(stack: Path) -> None:
    leader = the_leader(stack)
    assert leader.role_url is not None
    status, body = call("GET", leader.role_url)
    assert status == 200 and body["name"] == leader.name and body["epoch"] >= 1
    status, health = call("GET", f"{state(stack).endpoints['gateway']}/health")
    assert (status, health) == (200, {"status": "ok", "leader": leader.name})


def test_up_refuses_a_directory_whose_stack_runs(stack: Path) -> None:
    with pytest.raises(StackRunningError, match="down --dir"):
        start_stack(stack)


def test_place_query_cancel_and_accounts_through_the_gateway(stack: Path) -> None:
    gw = state(stack).endpoints["gateway"]
    status, sell = place(gw, "ACC0011", "000001", "sell", 100, 12.34)
    assert status == 201 and (sell["status"], sell["filled_qty"], sell["price"]) == ("new", 0, 12.34)
    status, buy = place(gw, "ACC0012", "000001", "buy", 40, 12.5, client_order_id="buy-1")
    assert status == 201 and (buy["status"], buy["client_order_id"]) == ("filled", "buy-1")
    assert [(f["sell_order_id"], f["qty"], f["price"]) for f in buy["fills"]] == [(sell["order_id"], 40, 12.34)]
    assert place(gw, "ACC0012", "000001", "buy", 40, 12.5, client_order_id="buy-1") == (201, buy)

    status, stored = call("GET", f"{gw}/orders/{sell['order_id']}")
    assert status == 200 and (stored["status"], stored["filled_qty"]) == ("partially_filled", 40)
    status, cancelled = call("DELETE", f"{gw}/orders/{sell['order_id']}")
    assert status == 200 and cancelled == {**stored, "status": "cancelled"}
    assert call("DELETE", f"{gw}/orders/{sell['order_id']}")[0] == 409
    assert call("DELETE", f"{gw}/orders/{buy['order_id']}")[0] == 409
    assert call("DELETE", f"{gw}/orders/99999999")[0] == 404
    assert call("GET", f"{gw}/orders/99999999")[0] == 404

    seller, buyer = call("GET", f"{gw}/accounts/ACC0011")[1], call("GET", f"{gw}/accounts/ACC0012")[1]
    assert round(seller["cash"] * 100) == SEED_CASH_CENTS + 40 * 1234
    assert round(buyer["cash"] * 100) == SEED_CASH_CENTS - 40 * 1234
    assert (seller["positions"]["000001"], buyer["positions"]["000001"]) == (
        SEED_SHARES - 40,
        SEED_SHARES + 40,
    )
    assert call("GET", f"{gw}/accounts/ACC0999")[0] == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        ({"account": "ACC0001", "symbol": "600000", "side": "buy", "qty": 1, "price": 1.001}, 400),
        ({"account": "ACC0001", "symbol": "600000", "side": "buy", "qty": -1, "price": 1}, 400),
        ({"account": "ACC0001", "symbol": "600000", "side": "hold", "qty": 1, "price": 1}, 400),
        ({"account": "ACC0777", "symbol": "600000", "side": "buy", "qty": 1, "price": 1}, 404),
        ({"account": "ACC0001", "symbol": "999999", "side": "buy", "qty": 1, "price": 1}, 404),
    ],
)
def test_invalid_orders_are_refused_with_a_message(stack: Path, body: object, status: int) -> None:
    answer = call("POST", f"{state(stack).endpoints['gateway']}/orders", body)
    assert answer[0] == status and answer[1]["error"]


def test_a_slow_redis_link_adds_latency_to_orders_without_serializing_them(stack: Path) -> None:
    """Group commit: 40 concurrent orders over a 150 ms Redis link share round trips instead of queueing."""
    description = state(stack)
    assert description.toxiproxy is not None
    api = ToxiproxyClient(description.toxiproxy.url)
    gw = description.endpoints["gateway"]
    leader = the_leader(stack)
    proxy = f"{leader.name}_to_redis"
    api.add_toxic(proxy, "slow_redis", "latency", {"latency": 150}, stream="downstream")
    try:

        def order(n: int) -> tuple[int, Any]:
            side = "buy" if n % 2 else "sell"
            return place(gw, f"ACC{60 + n % 5:04d}", "000002", side, 1, 5.0, client_order_id=f"gc-{n % 30}")

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=40) as pool:
            answers = list(pool.map(order, range(40)))
        elapsed = time.monotonic() - started
        print(f"\n40 concurrent orders over a 150 ms Redis link took {elapsed:.2f} s")
    finally:
        api.remove_toxic(proxy, "slow_redis")
    assert all(status == 201 for status, _ in answers), [a for a in answers if a[0] != 201][:3]
    # 30 distinct client order ids among 40 requests: the 10 repeats got the first order back, not a new one.
    ids = {body["client_order_id"]: body["order_id"] for _, body in answers}
    assert len(ids) == 30 and len({body["order_id"] for _, body in answers}) == 30
    # Serialized, 40 orders x 150 ms would take 6 s at the very least; sharing round trips it is far less.
    assert elapsed < 4.0, f"40 orders took {elapsed:.1f} s over a 150 ms link"
    assert totals(stack) == (SEED_CASH_CENTS * 100, dict.fromkeys(SYMBOLS, SEED_SHARES * 100))


def test_killing_the_leader_fails_over_without_losing_acknowledged_orders(
    stack: Path, record_property: Callable[[str, object], None]
) -> None:
    gw = state(stack).endpoints["gateway"]
    acknowledged = [
        place(gw, "ACC0021", "601318", "sell", 50, 40.0)[1],
        place(gw, "ACC0022", "601318", "buy", 20, 40.0)[1],
        place(gw, "ACC0023", "601318", "buy", 10, 39.0)[1],
    ]
    before = {o["order_id"]: call("GET", f"{gw}/orders/{o['order_id']}")[1] for o in acknowledged}
    old = the_leader(stack)
    assert old.pid is not None
    os.kill(old.pid, signal.SIGKILL)
    failover = wait_for(
        "order entry after the leader's SIGKILL",
        lambda: place(gw, "ACC0024", "000002", "buy", 1, 0.01)[0] == 201,
    )
    record_property("failover_after_sigkill_s", round(failover, 2))
    print(f"\norders accepted again {failover:.2f} s after SIGKILL of {old.name}")
    assert the_leader(stack).name != old.name
    assert {oid: call("GET", f"{gw}/orders/{oid}")[1] for oid in before} == before
    # The new leader rebuilt the book: the resting remainder still matches and can be cancelled.
    status, taker = place(gw, "ACC0025", "601318", "buy", 10, 40.0)
    assert status == 201 and taker["fills"][0]["sell_order_id"] == acknowledged[0]["order_id"]
    assert call("DELETE", f"{gw}/orders/{acknowledged[2]['order_id']}")[0] == 200

    down = cli("status", "--dir", str(stack))
    assert down.returncode == 1 and "not running" in down.stdout

    # Bring it back as process.kill's rollback would: the recorded command line, nothing else.
    description = state(stack)
    matcher = description.targets["matcher"]
    assert isinstance(matcher, ProcessTarget)
    engines = matcher.instances
    restarted = spawn(old)
    engines[[m.name for m in engines].index(old.name)] = restarted
    write_state(stack, description)
    assert restarted.health is not None
    wait_healthy(restarted.health, timeout_s=15)
    wait_for("the restarted matcher to follow", lambda: role_of(restarted) == "follower")
    assert cli("status", "--dir", str(stack)).returncode == 0
    reap(old.pid)


def test_a_paused_leader_is_replaced_and_cannot_write_once_resumed(stack: Path) -> None:
    gw = state(stack).endpoints["gateway"]
    old = the_leader(stack)
    (other,) = [m for m in matchers(stack) if m.name != old.name]
    assert old.pid is not None and old.role_url and other.role_url
    old_epoch = call("GET", old.role_url)[1]["epoch"]
    order = {"account": "ACC0031", "symbol": "600036", "side": "buy", "qty": 7, "price_cents": 100}
    answers: list[tuple[int, Any]] = []

    def send_late_order() -> None:
        url = f"http://127.0.0.1:{old.ports['http']}/internal/orders"
        answers.append(call("POST", url, {**order, "client_order_id": "late-1"}, timeout=30))

    os.kill(old.pid, signal.SIGSTOP)
    try:
        # Sent while it is frozen; the old leader reads it only after it resumes.
        late = threading.Thread(target=send_late_order)
        late.start()
        wait_for("a new leader", lambda: role_of(other) == "leader")
        assert call("GET", other.role_url)[1]["epoch"] > old_epoch
        wait_for(
            "order entry through the new leader",
            lambda: place(gw, "ACC0032", "600036", "sell", 1, 99.0)[0] == 201,
        )
    finally:
        os.kill(old.pid, signal.SIGCONT)
    late.join(timeout=30)
    assert answers and answers[0][0] == 503 and answers[0][1]["error"] == "not leader", answers

    async def late_order_id() -> int | None:
        store = Store(connect(state(stack).endpoints["redis"]))
        try:
            return await store.find_client_order("ACC0031", "late-1")
        finally:
            await store.close()

    assert asyncio.run(late_order_id()) is None, "the resumed old leader wrote an order"
    wait_for("the old leader to rejoin as follower", lambda: role_of(old) == "follower")
    assert the_leader(stack).name == other.name
    assert totals(stack) == (SEED_CASH_CENTS * 100, dict.fromkeys(SYMBOLS, SEED_SHARES * 100))


def test_a_leader_whose_epoch_moved_on_is_fenced_and_steps_down(stack: Path) -> None:
    """A rival takes the epoch while the leader still believes it leads: its next write is refused."""
    gw = state(stack).endpoints["gateway"]
    old = the_leader(stack)

    async def rival_epoch() -> int:
        store = Store(connect(state(stack).endpoints["redis"]))
        try:
            return await store.begin_epoch()
        finally:
            await store.close()

    taken = asyncio.run(rival_epoch())
    status, body = place(gw, "ACC0041", "600000", "buy", 3, 1.0, client_order_id="fenced-1")
    assert status == 503 and "fenced" in body["error"], body
    wait_for(
        "order entry after the fenced leader stepped down",
        lambda: place(gw, "ACC0042", "600000", "buy", 1, 1.0)[0] == 201,
    )
    leader = the_leader(stack)
    assert leader.role_url is not None and call("GET", leader.role_url)[1]["epoch"] > taken
    assert call("GET", f"{gw}/accounts/ACC0041")[1]["positions"]["600000"] == SEED_SHARES
    wait_for(
        "the fenced matcher to rejoin",
        lambda: {role_of(m) for m in matchers(stack)} == {"leader", "follower"},
    )
    assert old.name in {m.name for m in matchers(stack)}


def test_down_stops_every_process_and_keeps_the_logs(stack: Path) -> None:
    instances = [i for t in state(stack).targets.values() if isinstance(t, ProcessTarget) for i in t.instances]
    result = cli("down", "--dir", str(stack))
    assert result.returncode == 0, result.stderr
    for instance in instances:
        assert instance.pid is not None
        reap(instance.pid)
        assert not is_running(instance), f"{instance.name} (pid {instance.pid}) still runs"
    assert not (stack / "state.json").exists()
    assert all(instance.log and Path(instance.log).stat().st_size > 0 for instance in instances)
    assert cli("status", "--dir", str(stack)).returncode == 1
