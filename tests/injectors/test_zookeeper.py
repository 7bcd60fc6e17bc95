"""ZooKeeper injectors against a real 3-node ensemble (and, for sessions, the embedded Toxiproxy and kazoo)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.retry import KazooRetry
from pydantic import ValidationError

from clients.toxiproxy import ToxiproxyClient
from clients.zk import srvr_mode
from engine.stack import LiveStack
from injectors.errors import SelectionError
from injectors.selection import Selection
from injectors.zookeeper.expire_session import ZooKeeperExpireSessionInjector, ZooKeeperExpireSessionSpec
from injectors.zookeeper.kill_follower import ZooKeeperKillFollowerInjector, ZooKeeperKillFollowerSpec
from injectors.zookeeper.kill_leader import ZooKeeperKillLeaderInjector, ZooKeeperKillLeaderSpec
from injectors.zookeeper.lose_quorum import ZooKeeperLoseQuorumInjector, ZooKeeperLoseQuorumSpec
from stackspec.targets import LinkInstance, LinkTarget, ToxiproxyEndpoint
from tests.injectors import test_network
from tests.injectors.ha_servers import ctx_for, ensemble, healthy, instance, plan_for, started
from tests.support.helpers import free_port

pytestmark = [pytest.mark.infra, pytest.mark.slow]

toxiproxy = test_network.toxiproxy  # the embedded Toxiproxy-API server, module-scoped


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from started(tmp_path_factory, zookeeper=True)


@pytest.fixture
def stack(servers: LiveStack) -> LiveStack:
    return healthy(servers)  # each test starts from a healthy set, whichever node the last one left leading


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        time.sleep(0.05)


def test_kill_leader_measures_the_election_and_restarts_it_as_follower(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    zk = ensemble(stack)
    leader = zk.leader()
    injector = ZooKeeperKillLeaderInjector(ZooKeeperKillLeaderSpec())
    plan = plan_for(injector, stack, "zookeeper")
    assert [t.id for t in plan.targets] == [leader]  # the leader, not any node
    others = [name for name in zk.nodes if name != leader]

    assert all(r.ok for r in injector.inject(plan, ctx))
    assert srvr_mode(zk.nodes[str(leader)]) is None
    wait_until(lambda: zk.leader(others) is not None, 10, "a new leader among the others")

    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["restarted"] is True, undone.error
    elected = undone.measured["elected_after_s"]
    assert 0 < elected < 10 and undone.detail["new_leader"] in others
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    assert verified.detail["leader"] == undone.detail["new_leader"]
    assert srvr_mode(zk.nodes[str(leader)]) == "follower"
    print(f"\nkill_leader: {undone.detail['new_leader']} elected after {elected}s")


def test_kill_follower_leaves_the_leader_in_place(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    zk = ensemble(stack)
    leader = zk.leader()
    with pytest.raises(SelectionError, match="no instance has role 'follower'"):
        ZooKeeperKillFollowerInjector(ZooKeeperKillFollowerSpec()).resolve(
            "zookeeper", Selection(name=leader), ctx_for(stack)
        )
    injector = ZooKeeperKillFollowerInjector(ZooKeeperKillFollowerSpec())
    plan = plan_for(injector, stack, "zookeeper")
    (ref,) = plan.targets
    assert ref.id != leader and srvr_mode(ref.detail["address"]) == "follower"

    assert all(r.ok for r in injector.inject(plan, ctx))
    assert srvr_mode(ref.detail["address"]) is None
    time.sleep(1.0)  # several ticks: the leader keeps its quorum with the other follower
    assert zk.leader() == leader
    assert all(r.ok for r in injector.rollback(plan, ctx))
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok and verified.detail["leader"] == leader
    assert instance(stack, "zookeeper", ref.id).pid != ref.detail["pid"]


def test_lose_quorum_silences_the_survivor_until_the_majority_is_back(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    zk = ensemble(stack)
    leader = zk.leader()
    injector = ZooKeeperLoseQuorumInjector(ZooKeeperLoseQuorumSpec(include_leader=True))
    plan = plan_for(injector, stack, "zookeeper")
    killed = [t.id for t in plan.targets]
    assert len(killed) == 2 and leader in killed
    (survivor,) = [name for name in zk.nodes if name not in killed]

    assert all(r.ok for r in injector.inject(plan, ctx))
    wait_until(lambda: srvr_mode(zk.nodes[survivor]) is None, 10, f"{survivor} stops serving")
    time.sleep(1.0)
    assert srvr_mode(zk.nodes[survivor]) is None  # still no quorum

    undone = injector.rollback(plan, ctx)
    assert all(r.ok and r.detail["restarted"] for r in undone), [r.error for r in undone]
    measured = undone[-1].measured
    assert 0 < measured["quorum_after_s"] < 30 and measured["lost_after_s"] is not None
    verified = injector.verify_gone(plan, ctx)
    assert all(r.ok for r in verified), [r.error for r in verified]
    assert zk.problem() is None
    print(f"\nlose_quorum: lost after {measured['lost_after_s']}s, quorum back {measured['quorum_after_s']}s after")


@pytest.fixture
def proxied(stack: LiveStack, toxiproxy: str) -> Iterator[LiveStack]:
    """Two clients reaching every ZooKeeper node through a proxy of their own, as the ha profile lays out links."""
    api = ToxiproxyClient(toxiproxy, timeout_s=2.0)
    api.reset()
    links = []
    for client in ("client-1", "client-2"):
        for server, address in ensemble(stack).nodes.items():
            name = f"{client}->{server}"
            proxy = name.replace("->", "_to_")
            with contextlib.suppress(Exception):
                api.delete_proxy(proxy)
            created = api.create_proxy(proxy, f"127.0.0.1:{free_port()}", address)
            links.append(
                LinkInstance(
                    name=name, proxy=proxy, listen=created.listen, upstream=address, client=client, server=server
                )
            )
    targets = {**stack.description.targets, "client->zookeeper": LinkTarget(instances=links)}
    description = stack.description.model_copy(
        update={"targets": targets, "toxiproxy": ToxiproxyEndpoint(url=toxiproxy)}
    )
    yield LiveStack(description, None)
    for link in links:
        with contextlib.suppress(Exception):
            api.delete_proxy(link.proxy)


def listens(stack: LiveStack, client: str) -> list[str]:
    group = stack.target("client->zookeeper")
    assert isinstance(group, LinkTarget)
    return [link.listen for link in group.instances if link.client == client]


def test_expire_session_cuts_every_link_of_the_client_until_its_session_expires(proxied: LiveStack) -> None:
    ctx = ctx_for(proxied)
    states: list[str] = []
    retry = KazooRetry(max_tries=-1, delay=0.1, backoff=1.5, max_delay=0.5)
    kazoo = KazooClient(hosts=",".join(listens(proxied, "client-1")), timeout=2.0, connection_retry=retry)

    def listen(state: str) -> bool:
        states.append(state)
        return False  # keep listening

    kazoo.add_listener(listen)
    reconnected = threading.Event()
    try:
        kazoo.start(timeout=10)
        first_session = kazoo.client_id[0]
        injector = ZooKeeperExpireSessionInjector(ZooKeeperExpireSessionSpec(client="client-1", hold_s=3.5))
        plan = plan_for(injector, proxied, "client->zookeeper")
        assert sorted(t.id for t in plan.targets) == [f"client-1->zookeeper-{n}" for n in (1, 2, 3)]

        assert all(r.ok for r in injector.inject(plan, ctx))
        wait_until(lambda: KazooState.SUSPENDED in states, 5, "the client loses its connection")
        api = ToxiproxyClient(str(plan.targets[0].detail["toxiproxy_url"]))
        assert all(api.proxy(f"client-2_to_zookeeper-{n}").enabled for n in (1, 2, 3))  # only client-1's links
        # The links come back by themselves after hold_s; the client then learns its session expired.
        wait_until(lambda: KazooState.LOST in states, 15, "the session expires")

        def new_session() -> bool:
            if kazoo.connected and kazoo.client_id is not None and kazoo.client_id[0] != first_session:
                reconnected.set()
            return reconnected.is_set()

        wait_until(new_session, 10, "a new session")
        (undone, *_) = injector.rollback(plan, ctx)
        assert undone.ok and undone.detail["enabled"] is True and undone.detail["held_s"] >= 3.4
        verified = injector.verify_gone(plan, ctx)
        assert all(r.ok for r in verified), [r.error for r in verified]
    finally:
        with contextlib.suppress(Exception):
            kazoo.stop()
            kazoo.close()


def test_expire_session_selects_by_link_and_refuses_a_hold_within_the_session_timeout(proxied: LiveStack) -> None:
    injector = ZooKeeperExpireSessionInjector(ZooKeeperExpireSessionSpec())
    refs = injector.resolve("client->zookeeper", Selection(name="client-2->zookeeper-3"), ctx_for(proxied))
    assert sorted(r.id for r in refs) == [f"client-2->zookeeper-{n}" for n in (1, 2, 3)]  # every link of client-2
    assert all(r.detail["hold_s"] == 4.0 for r in refs)
    with pytest.raises(ValidationError, match="must be longer than session_timeout_s"):
        ZooKeeperExpireSessionInjector.parse_params({"session_timeout_s": 2.0, "hold_s": 3.0})
    with pytest.raises(SelectionError, match="clients are"):
        ZooKeeperExpireSessionInjector(ZooKeeperExpireSessionSpec(client="nobody")).resolve(
            "client->zookeeper", None, ctx_for(proxied)
        )
