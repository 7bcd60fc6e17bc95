"""Redis and ZooKeeper faults on nodes of another host: signals and restarts over a real sshd, topology over TCP.

The servers run on this machine, but the stack describes every node as on a host reached over SSH (a real
sshd on loopback): the kinds must signal and restart them there, never locally, and ask Sentinel and `srvr`
over the network at the nodes' addresses. One SSH login a host per step: connections are shared.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clients.procs import start_time_of
from clients.zk import srvr_mode
from engine.stack import LiveStack
from injectors.base import FaultPlan
from injectors.errors import TargetNotFoundError
from injectors.redis.kill_primary import RedisKillPrimaryInjector, RedisKillPrimarySpec
from injectors.zookeeper.kill_leader import ZooKeeperKillLeaderInjector, ZooKeeperKillLeaderSpec
from injectors.zookeeper.lose_quorum import ZooKeeperLoseQuorumInjector, ZooKeeperLoseQuorumSpec
from stackspec.targets import ProcessInstance, ProcessTarget, RedisHealth, SshHost, StackDescription, ZooKeeperHealth
from tests.injectors.ha_servers import ctx_for, ensemble, ha_stack, healthy, instance, on_host, redis_set
from tests.injectors.sshd_server import Sshd, start_sshd

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, sshd: Sshd) -> Iterator[LiveStack]:
    directory = tmp_path_factory.mktemp("ha-remote")
    with (
        ha_stack(directory, redis=True, zookeeper=True) as local,
        on_host(local, sshd.host(), directory / "r.json") as r,
    ):
        yield r


@pytest.fixture
def stack(remote: LiveStack) -> LiveStack:
    return healthy(remote)


def wait_until(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s}s"
        time.sleep(0.05)


def logins(server: Sshd) -> int:
    return server.log.read_text().count("Accepted publickey")


def started_over_ssh(pid: int) -> bool:
    """Started by the remote restart script (setsid: its own session), not as a child of this test."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]) != os.getpid() and int(fields[3]) == pid


def planned(
    injector: RedisKillPrimaryInjector | ZooKeeperKillLeaderInjector | ZooKeeperLoseQuorumInjector,
    stack: LiveStack,
    target: str,
) -> FaultPlan:
    refs = injector.resolve(target, None, ctx_for(stack))
    return FaultPlan(kind=injector.kind, target=target, params=injector.spec.model_dump(), targets=refs)


def test_kill_primary_on_a_remote_host_measures_the_promotion_and_restarts_it_there(
    stack: LiveStack, sshd: Sshd
) -> None:
    injector = RedisKillPrimaryInjector(RedisKillPrimarySpec())
    ctx = ctx_for(stack)
    before = logins(sshd)
    plan = planned(injector, stack, "redis")
    (ref,) = plan.targets
    assert ref.id == redis_set(stack).primary() and ref.detail["host"] == sshd.host().label

    (killed,) = injector.inject(plan, ctx)
    assert killed.ok, killed.error
    assert killed.detail["host"] == sshd.host().label and start_time_of(ref.detail["pid"]) is None
    wait_until(lambda: redis_set(stack).name_of(redis_set(stack).sentinel_view()[0]) not in (None, ref.id), 15)
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok, undone.error
    assert 0.5 < undone.measured["promoted_after_s"] < 15 and undone.detail["restarted"] is True
    restarted = instance(stack, "redis", ref.id)
    assert restarted.pid not in (None, ref.detail["pid"]) and started_over_ssh(int(restarted.pid or 0))
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    assert verified.detail["primary"] == undone.detail["new_primary"] != ref.id
    # resolve, inject, rollback, verify: at most one login each, however many calls each made.
    assert 1 <= logins(sshd) - before <= 4
    print(f"\nremote kill_primary: promoted after {undone.measured['promoted_after_s']}s")


def test_kill_leader_on_a_remote_host_measures_the_election(stack: LiveStack, sshd: Sshd) -> None:
    zk = ensemble(stack)
    leader = zk.leader()
    injector = ZooKeeperKillLeaderInjector(ZooKeeperKillLeaderSpec())
    ctx = ctx_for(stack)
    before = logins(sshd)
    plan = planned(injector, stack, "zookeeper")
    assert [t.id for t in plan.targets] == [leader] and plan.targets[0].detail["host"] == sshd.host().label

    assert all(r.ok for r in injector.inject(plan, ctx))
    others = [name for name in zk.nodes if name != leader]
    wait_until(lambda: zk.leader(others) is not None, 10)
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok, undone.error
    assert 0 < undone.measured["elected_after_s"] < 10 and undone.detail["new_leader"] != leader
    new = instance(stack, "zookeeper", str(leader))
    assert new.pid is not None and started_over_ssh(new.pid)
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    assert srvr_mode(zk.nodes[str(leader)]) == "follower"
    assert 1 <= logins(sshd) - before <= 4
    print(f"\nremote kill_leader: elected after {undone.measured['elected_after_s']}s")


def test_lose_quorum_restarts_every_server_on_its_own_host(stack: LiveStack, sshd: Sshd) -> None:
    injector = ZooKeeperLoseQuorumInjector(ZooKeeperLoseQuorumSpec())
    ctx = ctx_for(stack)
    plan = planned(injector, stack, "zookeeper")
    assert len(plan.targets) == 2

    assert all(r.ok for r in injector.inject(plan, ctx))
    undone = injector.rollback(plan, ctx)
    assert all(r.ok for r in undone), [r.error for r in undone]
    for ref in plan.targets:
        new = instance(stack, "zookeeper", ref.id)
        assert new.pid not in (None, ref.detail["pid"]) and started_over_ssh(int(new.pid or 0))
    assert all(r.ok for r in injector.verify_gone(plan, ctx))


def node(name: str, health: RedisHealth | ZooKeeperHealth, host: SshHost) -> ProcessInstance:
    return ProcessInstance(name=name, pid=1, argv=["/usr/bin/true"], health=health, host=host)


@pytest.mark.parametrize("kind", ["redis", "zookeeper"])
def test_a_node_on_another_host_at_a_loopback_address_is_refused_at_resolve(kind: str) -> None:
    host = SshHost(address="db-1.example.invalid", user="chaos")
    if kind == "redis":
        targets = {
            "redis": ProcessTarget(instances=[node("redis-1", RedisHealth(redis="127.0.0.1:6379"), host)]),
            "sentinel": ProcessTarget(instances=[node("sentinel-1", RedisHealth(redis="10.0.0.5:26379"), host)]),
        }
        injector: RedisKillPrimaryInjector | ZooKeeperKillLeaderInjector = RedisKillPrimaryInjector(
            RedisKillPrimarySpec()
        )
    else:
        targets = {"redis": ProcessTarget(instances=[node("zk-1", ZooKeeperHealth(zookeeper="localhost:2181"), host)])}
        injector = ZooKeeperKillLeaderInjector(ZooKeeperKillLeaderSpec())
    stack = LiveStack(StackDescription(name="refused", targets=targets, market_hours=None), None)
    with pytest.raises(TargetNotFoundError, match="is loopback, which from here is this runner's own host") as refused:
        injector.resolve("redis", None, ctx_for(stack))
    assert "chaos@db-1.example.invalid:22" in str(refused.value)
