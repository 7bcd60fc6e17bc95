"""Redis injectors against a real primary + replica + 3 Sentinels: right node, real effect, verified recovery."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.health import wait_healthy
from clients.procs import spawn, state_of
from clients.redis_set import redis_call
from engine.context import EngineContext
from engine.stack import LiveStack
from injectors.base import FaultPlan, FaultSpec, Injector, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError, SelectionError
from injectors.redis.client_pause import RedisClientPauseInjector, RedisClientPauseSpec
from injectors.redis.failover import RedisFailoverInjector, RedisFailoverSpec
from injectors.redis.freeze import RedisFreezeInjector, RedisFreezeSpec
from injectors.redis.kill_primary import RedisKillPrimaryInjector, RedisKillPrimarySpec
from injectors.redis.outage import RedisOutageInjector, RedisOutageSpec
from injectors.redis.slow import RedisSlowInjector, RedisSlowSpec, check_debug
from injectors.selection import Selection
from tests.injectors.ha_servers import ctx_for, healthy, instance, plan_for, redis_set, started, stop
from tradingstack.topology import free_ports, redis_node_instance

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    yield from started(tmp_path_factory, redis=True)


@pytest.fixture
def stack(servers: LiveStack) -> LiveStack:
    return healthy(servers)  # each test starts from a healthy set, whichever node the last one left leading


def on_primary(injector: Injector[FaultSpec], stack: LiveStack) -> tuple[EngineContext, FaultPlan, TargetRef]:
    """Plan the fault and check that it chose the primary (as the Sentinels name it and INFO says), not any node."""
    primary = redis_set(stack).primary()
    plan = plan_for(injector, stack, "redis")
    (ref,) = plan.targets
    assert ref.id == primary and role(ref.detail["address"]) == "master"
    return ctx_for(stack), plan, ref


def role(address: str) -> str:
    return str(redis_call(address, "INFO", "replication")["role"])


def wait_promoted_from(stack: LiveStack, old: str, timeout_s: float = 15) -> str:
    rs = redis_set(stack)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        name = rs.name_of(rs.sentinel_view()[0])
        if name not in (None, old):
            assert name is not None
            return name
        time.sleep(0.1)
    raise AssertionError(f"the Sentinels did not promote another node than {old} within {timeout_s}s")


def fails(address: str, *command: str, timeout_s: float = 0.4) -> bool:
    try:
        redis_call(address, *command, timeout_s=timeout_s)
    except Exception:
        return True
    return False


def test_kill_primary_measures_the_promotion_and_the_old_primary_rejoins_as_replica(stack: LiveStack) -> None:
    injector = RedisKillPrimaryInjector(RedisKillPrimarySpec())
    ctx, plan, ref = on_primary(injector, stack)
    primary = ref.id
    old_pid = instance(stack, "redis", primary).pid

    (result,) = injector.inject(plan, ctx)
    assert result.ok and result.detail["pid"] == old_pid
    assert fails(ref.detail["address"], "SET", "k", "v")  # writes to the old primary fail
    with pytest.raises(FaultStillPresentError, match="not running"):
        injector.verify_one(ref, plan, ctx)
    new_primary = wait_promoted_from(stack, primary)

    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok, undone.error
    promoted = undone.measured["promoted_after_s"]
    assert 0.5 < promoted < 15 and undone.detail["new_primary"] == new_primary
    assert undone.detail["restarted"] is True and instance(stack, "redis", primary).pid not in (None, old_pid)
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    assert verified.detail["primary"] == new_primary and role(ref.detail["address"]) == "slave"
    print(f"\nkill_primary: promoted after {promoted}s, settled {verified.detail['settled_after_s']}s after restart")


def doubting_sentinels(stack: LiveStack) -> list[str]:
    """Sentinels that still hold a peer's "master is down" answer (the flag `master_down` on that peer)."""
    rs = redis_set(stack)
    doubting = []
    for sentinel in rs.sentinels:
        for peer in redis_call(sentinel, "SENTINEL", "SENTINELS", rs.master):
            flags = dict(zip(peer[::2], peer[1::2], strict=False)) if isinstance(peer, list) else peer
            if "master_down" in str(flags.get("flags", "")).split(","):
                doubting.append(sentinel)
    return doubting


def test_the_old_primary_rejoins_only_after_the_sentinels_dropped_the_failovers_down_answers(
    stack: LiveStack,
) -> None:
    """The flake's cause: Sentinel keeps its peers' "master is down" answers of a failover for 5 s and counts
    them for the new primary, so in that window one Sentinel's late PONG (down-after 1,000 ms) is a quorum
    at once — and a second failover promotes the old primary back if it has rejoined as a replica. So the
    old primary must not be back in that window."""
    injector = RedisKillPrimaryInjector(RedisKillPrimarySpec())
    ctx, plan, ref = on_primary(injector, stack)
    assert all(r.ok for r in injector.inject(plan, ctx))
    new_primary = wait_promoted_from(stack, ref.id)
    seen: list[list[str]] = []

    def first_answer() -> None:  # the moment the old primary answers again: what do the Sentinels hold?
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline:
            if not fails(ref.detail["address"], "PING", timeout_s=0.2):
                seen.append(doubting_sentinels(stack))
            time.sleep(0.02)

    watcher = threading.Thread(target=first_answer, daemon=True)
    watcher.start()
    (undone,) = injector.rollback(plan, ctx)
    watcher.join(timeout=60)
    assert undone.ok, undone.error
    assert seen == [[]], f"the old primary was back while Sentinels still counted 'down' answers: {seen}"
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    assert verified.detail["primary"] == new_primary and role(ref.detail["address"]) == "slave"


def test_freeze_primary_is_failed_over_and_demoted_when_resumed(stack: LiveStack) -> None:
    injector = RedisFreezeInjector(RedisFreezeSpec())
    ctx, plan, ref = on_primary(injector, stack)
    primary = ref.id
    pid = instance(stack, "redis", primary).pid
    assert pid is not None

    assert all(r.ok for r in injector.inject(plan, ctx))
    assert state_of(pid) == "T" and fails(ref.detail["address"], "PING", timeout_s=0.3)
    new_primary = wait_promoted_from(stack, primary)

    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["signal"] == "SIGCONT" and state_of(pid) != "T"
    assert undone.detail["new_primary"] == new_primary and undone.measured["promoted_after_s"] > 0.5
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    assert role(ref.detail["address"]) == "slave"  # the resumed old primary was demoted
    print(f"\nfreeze: promoted after {undone.measured['promoted_after_s']}s")


@pytest.mark.parametrize(("mode", "pause_ms"), [("write", 5000), ("all", 700)])
def test_client_pause_holds_writes_until_unpaused(stack: LiveStack, mode: str, pause_ms: int) -> None:
    injector = RedisClientPauseInjector(RedisClientPauseSpec.model_validate({"pause_ms": pause_ms, "mode": mode}))
    ctx, plan, ref = on_primary(injector, stack)
    primary = ref.id
    address = ref.detail["address"]

    started = time.monotonic()
    assert all(r.ok for r in injector.inject(plan, ctx))
    assert fails(address, "SET", "paused", "1", timeout_s=0.3)  # the write blocks and times out
    assert fails(address, "GET", "paused", timeout_s=0.3) is (mode == "all")  # reads only in `all` mode
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok, undone.error
    # `write` is lifted at once; Redis 7.0 holds even CLIENT UNPAUSE in `all` mode until the pause ends.
    assert time.monotonic() - started < (1.5 if mode == "write" else pause_ms / 1000 + 1.0)
    assert redis_call(address, "SET", "paused", "1") is True
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok and verified.detail["primary"] == primary


def test_slow_blocks_the_primary_with_debug_sleep_until_rolled_back(stack: LiveStack) -> None:
    injector = RedisSlowInjector(RedisSlowSpec(sleep_ms=400, interval_ms=500))
    ctx, plan, ref = on_primary(injector, stack)

    assert all(r.ok for r in injector.inject(plan, ctx))
    took = []
    for _ in range(6):
        began = time.monotonic()
        redis_call(ref.detail["address"], "PING", timeout_s=2)
        took.append(time.monotonic() - began)
        time.sleep(0.05)
    assert max(took) > 0.15  # PINGs wait behind the DEBUG SLEEPs
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["stopped"] is True and undone.detail["sleeps"] >= 2
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok and verified.detail["ping_ms"] < 250


def test_slow_refuses_a_redis_without_debug_and_names_the_flag(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    built = redis_node_instance(tmp_path, "plain", port)
    at = built.argv.index("--enable-debug-command")
    # A Redis as Debian starts it: DEBUG refused (the reference stack enables it for this kind).
    plain = spawn(built.model_copy(update={"argv": built.argv[:at] + built.argv[at + 2 :]}))
    try:
        assert plain.health is not None
        wait_healthy(plain.health, 10)
        with pytest.raises(InjectionError, match="--enable-debug-command local"):
            check_debug(f"127.0.0.1:{port}")
    finally:
        stop([plain])


def test_outage_stops_every_node_and_resumes_primary_first(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    primary = redis_set(stack).primary()
    injector = RedisOutageInjector(RedisOutageSpec())
    plan = plan_for(injector, stack, "redis")
    assert [t.id for t in plan.targets][-1] == primary and len(plan.targets) == 2  # replicas first
    assert all(r.ok for r in injector.inject(plan, ctx))
    for ref in plan.targets:
        assert state_of(ref.detail["pid"]) == "T" and fails(ref.detail["address"], "PING", timeout_s=0.3)
    time.sleep(1.5)  # past Sentinel's down-after
    undone = injector.rollback(plan, ctx)
    assert [r.id for r in undone] == [primary, *[t.id for t in plan.targets][:-1]] and all(r.ok for r in undone)
    # Whichever node ends up primary (a failover Sentinel started against the frozen replica may complete
    # once it runs again), the set is whole: one master, the replica linked, the Sentinels agreeing.
    verified = injector.verify_gone(plan, ctx)
    assert all(r.ok for r in verified), [r.error for r in verified]
    print(f"\noutage: primary before {primary}, after {verified[0].detail['primary']}")


def test_failover_switches_the_primary_and_is_not_switched_back(stack: LiveStack) -> None:
    injector = RedisFailoverInjector(RedisFailoverSpec())
    ctx, plan, ref = on_primary(injector, stack)
    primary = ref.id
    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["new_primary"] not in (None, primary)
    assert 0 < undone.measured["promoted_after_s"] < 15
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    assert verified.detail["primary"] == undone.detail["new_primary"] and role(ref.detail["address"]) == "slave"
    print(f"\nfailover: promoted after {undone.measured['promoted_after_s']}s")


def test_primary_faults_refuse_a_select(stack: LiveStack) -> None:
    with pytest.raises(SelectionError, match="remove `select`"):
        RedisKillPrimaryInjector(RedisKillPrimarySpec()).resolve("redis", Selection(all=True), ctx_for(stack))
