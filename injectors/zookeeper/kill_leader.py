"""`zookeeper.kill_leader`: kill the ZooKeeper leader (SIGKILL) and measure the election; rollback restarts it."""

from __future__ import annotations

from typing import ClassVar

from clients.watch import ChangeWatch
from clients.zk import Ensemble
from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import InjectionError
from injectors.registry import register
from injectors.selection import Selection
from injectors.zookeeper.common import EnsembleSpec, KillInjector, ensemble_of, no_select


class ZooKeeperKillLeaderSpec(EnsembleSpec):
    """SIGKILL the leader and measure the election among the others; rollback restarts it as a follower."""


@register
class ZooKeeperKillLeaderInjector(KillInjector[ZooKeeperKillLeaderSpec]):
    """Kill the ZooKeeper leader (SIGKILL) and measure the election; rollback restarts it."""

    kind: ClassVar[str] = "zookeeper.kill_leader"
    spec_type: ClassVar[type[FaultSpec]] = ZooKeeperKillLeaderSpec

    def __init__(self, spec: ZooKeeperKillLeaderSpec) -> None:
        super().__init__(spec)
        self._watches: dict[str, ChangeWatch] = {}

    def choose(self, ensemble: Ensemble, select: Selection | None, ctx: RunContext) -> list[str]:
        no_select(self.kind, select)
        leader = ensemble.leader()
        if leader is None:
            raise InjectionError(f"no single leader in {sorted(ensemble.nodes)} right now")
        return [leader]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        ensemble = ensemble_of(plan.target, ctx)
        others = [name for name in ensemble.nodes if name != ref.id]
        self._watches[ref.id] = ChangeWatch(lambda: ensemble.leader(others))
        try:
            return super().inject_one(ref, plan, ctx)
        except Exception:
            self._watches.pop(ref.id).finish()
            raise

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        election = Outcome()
        if (watch := self._watches.pop(ref.id, None)) is not None:
            after_s, leader = watch.finish()
            what = f"{leader} elected {after_s:.2f}s after" if leader else "no new leader elected during"
            ctx.note(f"{plan.kind}: {what} the kill of leader {ref.id}", elected_after_s=after_s, new_leader=leader)
            if leader is not None and after_s is not None:
                election = Outcome(detail={"new_leader": leader}, measured={"elected_after_s": after_s})
        return election | super().rollback_one(ref, plan, ctx)
