"""The fault matrix's process kinds: their scenarios on the `ha` stack and the direct checks of their effect."""

from __future__ import annotations

from injectors.base import FaultPlan
from tests.faultmatrix.checks import Check, Live, proc_state, serving
from tests.faultmatrix.kinds import Scenario

FOLLOWER = {"role": "follower"}


def planned_dead(live: Live, plan: FaultPlan) -> None:
    """Every process the plan hit is gone (killed)."""
    for ref in plan.targets:
        state = proc_state(ref.detail["pid"], ref.detail.get("start_time"))
        assert state is None, f"{ref.id} (pid {ref.detail['pid']}) is still alive (state {state})"


def planned_stopped(live: Live, plan: FaultPlan) -> None:
    """Every process the plan hit is frozen (SIGSTOP)."""
    for ref in plan.targets:
        state = proc_state(ref.detail["pid"], ref.detail.get("start_time"))
        assert state == "T", f"{ref.id} (pid {ref.detail['pid']}) is not stopped (state {state})"


def running_again(*, new_pid: bool) -> Check:
    """Every process the plan hit runs (a new PID after a kill, the same one after a freeze) and serves."""

    def check(live: Live, plan: FaultPlan) -> None:
        for ref in plan.targets:
            instance = live.instance(plan.target, ref.id)
            state = proc_state(instance.pid, instance.start_time)
            assert state is not None, f"{ref.id} is not running (state.json pid {instance.pid})"
            assert state != "T", f"{ref.id} (pid {instance.pid}) is still stopped"
            if new_pid:
                assert instance.pid != ref.detail["pid"], f"{ref.id} still has pid {instance.pid}: never restarted?"
            else:
                assert instance.pid == ref.detail["pid"], (
                    f"{ref.id} was replaced ({ref.detail['pid']} → {instance.pid})"
                )
            serving(instance)

    return check


SCENARIOS: dict[str, Scenario] = {
    "process.kill": Scenario("matcher", running_again(new_pid=True), planned_dead, select=FOLLOWER),
    "process.pause": Scenario("matcher", running_again(new_pid=False), planned_stopped, select=FOLLOWER),
}
