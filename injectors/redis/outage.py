"""`redis.outage`: stop every Redis node (SIGSTOP: connections hang); rollback resumes them, primary first."""

from __future__ import annotations

from typing import ClassVar

from injectors.base import FaultPlan, FaultSpec, RunContext, TargetRef, TargetResult
from injectors.errors import SelectionError
from injectors.redis.common import NodeSpec, node_ref, primary_of
from injectors.redis.freeze import Freezer
from injectors.registry import register
from injectors.selection import Selection


class RedisOutageSpec(NodeSpec):
    """SIGSTOP every Redis node of the target, replicas first; rollback resumes them, the primary first."""


@register
class RedisOutageInjector(Freezer[RedisOutageSpec]):
    """Stop every Redis node (SIGSTOP: connections hang); rollback resumes them, primary first."""

    kind: ClassVar[str] = "redis.outage"
    spec_type: ClassVar[type[FaultSpec]] = RedisOutageSpec

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        if select is not None:
            raise SelectionError(f"{self.kind} stops every node of {target!r}; remove `select`")
        redis_set, unmatched = self.resolved_set(target, ctx)
        primary = primary_of(redis_set)
        nodes = sorted(redis_set.nodes, key=lambda n: n == primary)  # the primary last
        return [node_ref(redis_set, name, name == primary, self.hosts, unmatched) for name in nodes]

    def rollback_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        # The plan lists the primary last: resume it first, so the Sentinels see it back before any replica.
        # (A failover Sentinel began against a frozen replica it had not yet seen down may still complete.)
        return super().rollback_all(plan.model_copy(update={"targets": plan.targets[::-1]}), ctx)
