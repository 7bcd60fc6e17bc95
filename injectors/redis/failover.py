"""`redis.failover`: force a Sentinel failover of the primary and measure it; rollback only verifies health."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue
from redis.exceptions import RedisError

from clients.redis_set import redis_call
from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import InjectionError
from injectors.redis.common import RedisInjector, SentinelSpec
from injectors.registry import register


class RedisFailoverSpec(SentinelSpec):
    """SENTINEL FAILOVER: a planned switch of the primary to a replica; the topology is not switched back."""

    promotion_timeout_s: float = Field(
        default=30.0, gt=0, description="Rollback: how long to wait for the Sentinels to name the new primary."
    )


@register
class RedisFailoverInjector(RedisInjector[RedisFailoverSpec]):
    """Force a Sentinel failover of the primary and measure it; rollback only verifies health."""

    kind: ClassVar[str] = "redis.failover"
    spec_type: ClassVar[type[FaultSpec]] = RedisFailoverSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        redis_set = self.redis_set(plan.target, ctx)
        refused: list[JsonValue] = []
        self.watch_promotion(ref, plan, ctx)
        for sentinel in redis_set.sentinels:
            try:
                redis_call(sentinel, "SENTINEL", "FAILOVER", redis_set.master)
            except (RedisError, OSError) as exc:
                refused.append(f"{sentinel}: {exc}")
                continue
            return Outcome(detail={"sentinel": sentinel, "old_primary": ref.id, "refused_by": refused})
        self.stop_watching(ref)
        raise InjectionError(f"no Sentinel started a failover of {redis_set.master!r}: {'; '.join(map(str, refused))}")

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        # Nothing to undo: every node is as healthy as before, only the roles changed (see docs/injectors.md).
        return self.promotion(ref, plan, ctx, wait_s=self.spec.promotion_timeout_s)
