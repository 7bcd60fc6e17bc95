"""`zookeeper.kill_follower`: kill ZooKeeper followers (SIGKILL), never the leader; rollback restarts them."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from clients.zk import Ensemble
from injectors.base import FaultSpec, RunContext
from injectors.errors import SelectionError
from injectors.registry import register
from injectors.selection import Selection
from injectors.zookeeper.common import EnsembleSpec, KillInjector, select_names


class ZooKeeperKillFollowerSpec(EnsembleSpec):
    """SIGKILL `count` followers chosen at random (the leader is never hit); rollback restarts them."""

    count: int = Field(default=1, ge=1, description="How many followers to kill (`select` may narrow by name).")


@register
class ZooKeeperKillFollowerInjector(KillInjector[ZooKeeperKillFollowerSpec]):
    """Kill ZooKeeper followers (SIGKILL), never the leader; rollback restarts them."""

    kind: ClassVar[str] = "zookeeper.kill_follower"
    spec_type: ClassVar[type[FaultSpec]] = ZooKeeperKillFollowerSpec

    def choose(self, ensemble: Ensemble, select: Selection | None, ctx: RunContext) -> list[str]:
        if select is not None and (select.all or select.count is not None or select.percent is not None):
            raise SelectionError(f"{self.kind} picks `count` followers (a param); `select` may only filter by name")
        modes = ensemble.modes()
        wanted = Selection(name=select.name if select else None, role="follower", count=self.spec.count)
        return select_names(list(ensemble.nodes), wanted, ctx, modes)
