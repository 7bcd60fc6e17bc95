"""`zookeeper.lose_quorum`: kill a majority of the ZooKeeper servers (no quorum); rollback restarts them."""

from __future__ import annotations

import contextlib
import time
from typing import ClassVar

from pydantic import Field

from clients.errors import ClientError
from clients.procs import is_running
from clients.watch import ChangeWatch
from clients.zk import Ensemble
from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef, TargetResult
from injectors.errors import RollbackError, SelectionError
from injectors.process.common import current_instance, managed, run_command
from injectors.registry import register
from injectors.selection import Selection
from injectors.zookeeper.common import EnsembleSpec, KillInjector, ensemble_of, healthy, no_select
from stackspec.targets import ProcessInstance


class ZooKeeperLoseQuorumSpec(EnsembleSpec):
    """SIGKILL a majority of the servers, so the survivors stop serving; rollback restarts them all."""

    include_leader: bool = Field(
        default=True, description="Kill the leader among the majority (else only followers: the leader loses quorum)."
    )


@register
class ZooKeeperLoseQuorumInjector(KillInjector[ZooKeeperLoseQuorumSpec]):
    """Kill a majority of the ZooKeeper servers (no quorum); rollback restarts them."""

    kind: ClassVar[str] = "zookeeper.lose_quorum"
    spec_type: ClassVar[type[FaultSpec]] = ZooKeeperLoseQuorumSpec

    def __init__(self, spec: ZooKeeperLoseQuorumSpec) -> None:
        super().__init__(spec)
        self._lost: ChangeWatch | None = None
        self._lost_after_s: float | None = None
        self._restarted_at: float | None = None
        self._spawned: set[str] = set()

    def choose(self, ensemble: Ensemble, select: Selection | None, ctx: RunContext) -> list[str]:
        no_select(self.kind, select)
        modes = ensemble.modes()
        majority = len(ensemble.nodes) // 2 + 1
        leader = [name for name, mode in modes.items() if mode == "leader"]
        followers = [name for name, mode in modes.items() if mode == "follower"]
        take = leader if self.spec.include_leader else []
        if majority - len(take) > len(followers):
            raise SelectionError(f"{len(ensemble.nodes)} servers: not enough followers for a majority of {majority}")
        return take + sorted(ctx.rng.sample(followers, majority - len(take)))

    def inject_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        ensemble = ensemble_of(plan.target, ctx)
        survivors = [name for name in ensemble.nodes if name not in {ref.id for ref in plan.targets}]
        # The quorum is lost once no survivor serves any more (a surviving leader needs a few ticks to notice).
        self._lost = ChangeWatch(lambda: None if any(ensemble.modes(survivors).values()) else "lost")
        return super().inject_all(plan, ctx)

    def rollback_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        if self._lost is not None:
            self._lost_after_s = self._lost.finish()[0]
            ctx.note(f"{plan.kind}: the survivors stopped serving {self._lost_after_s}s after the kill")
            self._lost = None
        # Start every killed server before waiting for any: one alone cannot always bring the quorum back.
        self._restarted_at = time.monotonic()
        self._spawned = set()
        for ref in plan.targets:
            instance = current_instance(plan.target, ref, ctx)
            if not is_running(instance, self.hosts):
                with contextlib.suppress(OSError, ClientError, RollbackError):  # rollback_one tries again and reports
                    if self._start(plan, ctx, instance):
                        self._spawned.add(ref.id)
        return super().rollback_all(plan, ctx)

    def _start(self, plan: FaultPlan, ctx: RunContext, instance: ProcessInstance) -> bool:
        """Start a killed server on its own host without waiting for it: from its argv, or by its restart
        command (rollback_one then finds the process the command started). False: its supervisor does it."""
        host = self.hosts.of(instance)
        restart = managed(instance)
        if restart is None:
            ctx.stack.replace_instance(plan.target, host.spawn(instance))
            return True
        if restart.by == "command":
            run_command(host, instance, restart)
            return True
        return False

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        restarted = super().rollback_one(ref, plan, ctx)
        # The first look that finds the quorum back: this measures the recovery (verification asks for stability).
        settled = healthy(ensemble_of(plan.target, ctx), self.spec.settle_timeout_s, stable=False)
        measured = {"lost_after_s": self._lost_after_s} if self._lost_after_s is not None else {}
        if self._restarted_at is not None:
            measured["quorum_after_s"] = round(time.monotonic() - self._restarted_at, 3)
        again = bool(restarted.detail.get("restarted")) or ref.id in self._spawned
        return restarted | Outcome(detail={"restarted": again, "leader": settled["leader"]}, measured=measured)
