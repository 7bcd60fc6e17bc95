"""The fault matrix's ZooKeeper kinds: their scenarios on the `ha` stack's ensemble and its checks."""

from __future__ import annotations

from injectors.base import FaultPlan
from tests.faultmatrix.checks import Live, address, both, proc_state, srvr_mode
from tests.faultmatrix.kinds import Scenario
from tests.faultmatrix.kinds.network import links_disabled
from tests.faultmatrix.kinds.process import FOLLOWER, planned_dead, running_again


def zookeeper_quorum(live: Live, plan: FaultPlan) -> None:
    """Every server runs and serves as leader or follower, with exactly one leader."""
    modes = {}
    for node in live.instances("zookeeper"):
        state = proc_state(node.pid, node.start_time)
        assert state not in (None, "T"), f"{node.name} (pid {node.pid}) is not running normally (state {state})"
        modes[node.name] = srvr_mode(address(node))
    assert all(mode in ("leader", "follower") for mode in modes.values()), f"not every server serves: {modes}"
    assert list(modes.values()).count("leader") == 1, f"expected one leader: {modes}"


def zookeeper_links_clean(live: Live, plan: FaultPlan) -> None:
    """The client's links are enabled, carry no toxic, and a server answers `srvr` through each of them."""
    for ref in plan.targets:
        proxy = live.proxy(ref.detail["proxy"])
        assert proxy["enabled"] is True and proxy["toxics"] == [], f"proxy {proxy['name']}: {proxy}"
        mode = srvr_mode(live.link(plan.target, ref.id).listen)
        assert mode in ("leader", "follower"), f"no ZooKeeper answer through {ref.id} (mode {mode})"


KILLED_ZK = both(zookeeper_quorum, running_again(new_pid=True))

SCENARIOS: dict[str, Scenario] = {
    "zookeeper.kill_leader": Scenario("zookeeper", KILLED_ZK, planned_dead),
    "zookeeper.kill_follower": Scenario("zookeeper", KILLED_ZK, planned_dead),
    "zookeeper.lose_quorum": Scenario("zookeeper", KILLED_ZK, planned_dead),
    "zookeeper.expire_session": Scenario(
        "matcher->zookeeper", both(zookeeper_links_clean, zookeeper_quorum), links_disabled, select=FOLLOWER
    ),
}
