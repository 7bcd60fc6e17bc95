"""The fault matrix's Redis kinds: their scenarios on the `ha` stack's Sentinel-managed set and its checks."""

from __future__ import annotations

import time

from redis.exceptions import RedisError

from injectors.base import FaultPlan
from tests.faultmatrix.checks import FAST_S, SENTINEL_MASTER, Live, address, both, proc_state, rcall
from tests.faultmatrix.kinds import Scenario
from tests.faultmatrix.kinds.process import planned_dead, planned_stopped, running_again


def replication(address: str) -> dict[str, str]:
    """INFO replication (redis-py parses it into a dict), values as strings."""
    return {str(key): str(value) for key, value in dict(rcall(address, "INFO", "replication")).items()}


def redis_whole(live: Live, plan: FaultPlan) -> None:
    """Every node runs and answers; exactly one master, every replica linked to it, every Sentinel naming
    it; a write and a read on it are fast (no pause, no DEBUG SLEEP left)."""
    nodes = live.instances("redis")
    for node in nodes:
        state = proc_state(node.pid, node.start_time)
        assert state not in (None, "T"), f"{node.name} (pid {node.pid}) is not running normally (state {state})"
    info = {node.name: replication(address(node)) for node in nodes}
    masters = [name for name, i in info.items() if i["role"] == "master"]
    assert len(masters) == 1, f"expected one master, found {masters}"
    primary = live.instance("redis", masters[0])
    port = primary.ports["client"]
    for name, i in info.items():
        if name != primary.name:
            seen = (i["role"], int(i.get("master_port", 0)), i.get("master_link_status"))
            assert seen == ("slave", port, "up"), f"{name} is not a linked replica of {primary.name}: {seen}"
    for sentinel in live.instances("sentinel"):
        named = rcall(address(sentinel), "SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
        assert named and int(named[1]) == port, f"{sentinel.name} names {named}, the master is {primary.name}"
    started = time.monotonic()
    try:
        rcall(address(primary), "SET", "chaos:matrix", plan.kind)
        assert rcall(address(primary), "GET", "chaos:matrix") == plan.kind
    except RedisError as exc:
        raise AssertionError(f"SET/GET on the master {primary.name} failed: {exc}") from exc
    took = time.monotonic() - started
    assert took < FAST_S, f"SET+GET on the master took {took:.3f}s"


def redis_writes_held(live: Live, plan: FaultPlan) -> None:
    (ref,) = plan.targets
    try:
        rcall(ref.detail["address"], "SET", "chaos:matrix", "held?", timeout_s=0.3)
    except RedisError:
        return
    raise AssertionError(f"a write to {ref.id} went through the CLIENT PAUSE")


def redis_slowed(live: Live, plan: FaultPlan) -> None:
    (ref,) = plan.targets
    took = []
    for _ in range(4):
        started = time.monotonic()
        rcall(ref.detail["address"], "PING", timeout_s=3.0)
        took.append(time.monotonic() - started)
        time.sleep(0.05)
    assert max(took) >= 0.1, f"PINGs to {ref.id} are not held up by DEBUG SLEEP: {took}"


def redis_promoted(live: Live, plan: FaultPlan) -> None:
    """A majority of the Sentinels name another primary than the planned one (within 15 s)."""
    (ref,) = plan.targets
    old = int(ref.detail["address"].rpartition(":")[2])
    deadline = time.monotonic() + 15
    named: list[int | None] = []
    while time.monotonic() < deadline:
        named = []
        for sentinel in live.instances("sentinel"):
            try:
                reply = rcall(address(sentinel), "SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
                named.append(int(reply[1]) if reply else None)
            except RedisError:
                named.append(None)
        if sum(port not in (None, old) for port in named) >= 2:
            return
        time.sleep(0.1)
    raise AssertionError(f"the Sentinels still name port {old} as primary: {named}")


SCENARIOS: dict[str, Scenario] = {
    "redis.kill_primary": Scenario("redis", both(redis_whole, running_again(new_pid=True)), planned_dead),
    "redis.freeze": Scenario("redis", both(redis_whole, running_again(new_pid=False)), planned_stopped),
    "redis.outage": Scenario("redis", both(redis_whole, running_again(new_pid=False)), planned_stopped),
    "redis.client_pause": Scenario("redis", redis_whole, redis_writes_held, {"pause_ms": 20_000, "mode": "write"}),
    "redis.slow": Scenario("redis", redis_whole, redis_slowed, {"sleep_ms": 400, "interval_ms": 450}),
    "redis.failover": Scenario("redis", redis_whole, redis_promoted),
}
