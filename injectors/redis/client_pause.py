"""`redis.client_pause`: pause the Redis primary's clients (CLIENT PAUSE, all or writes); rollback unpauses."""

from __future__ import annotations

import time
from typing import ClassVar, Literal

from pydantic import Field
from redis.exceptions import RedisError

from clients.redis_set import CALL_TIMEOUT_S, redis_call
from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError, RollbackError
from injectors.redis.common import RedisInjector, SentinelSpec
from injectors.registry import register


class RedisClientPauseSpec(SentinelSpec):
    """CLIENT PAUSE on the primary: its clients' commands (or only writes) wait until the pause ends."""

    pause_ms: int = Field(gt=0, description="Length of the pause; Redis lifts it by itself after this long.")
    mode: Literal["write", "all"] = Field(
        default="all", description="`all` holds every command (Sentinel's PINGs too); `write` only writes."
    )


@register
class RedisClientPauseInjector(RedisInjector[RedisClientPauseSpec]):
    """Pause the Redis primary's clients (CLIENT PAUSE, all or writes); rollback unpauses."""

    kind: ClassVar[str] = "redis.client_pause"
    spec_type: ClassVar[type[FaultSpec]] = RedisClientPauseSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        address = str(ref.detail["address"])
        try:
            reply = redis_call(address, "CLIENT", "PAUSE", self.spec.pause_ms, self.spec.mode.upper())
        except (RedisError, OSError) as exc:
            raise InjectionError(f"CLIENT PAUSE on {ref.id} ({address}) failed: {exc}") from exc
        answer = reply if isinstance(reply, str | bool) else str(reply)
        return Outcome(
            detail={"address": address, "pause_ms": self.spec.pause_ms, "mode": self.spec.mode, "reply": answer}
        )

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        # In `all` mode Redis 7.0 holds even CLIENT UNPAUSE until the pause ends: wait for it, boundedly.
        address = str(ref.detail["address"])
        timeout_s = self.spec.pause_ms / 1000 + CALL_TIMEOUT_S
        started = time.monotonic()
        try:
            redis_call(address, "CLIENT", "UNPAUSE", timeout_s=timeout_s)
        except (RedisError, OSError) as exc:
            raise RollbackError(f"CLIENT UNPAUSE on {ref.id} ({address}) failed: {exc}") from exc
        return Outcome(detail={"address": address, "unpaused_after_s": round(time.monotonic() - started, 3)})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        # PUBLISH is held by both pause modes (it may replicate) and changes no data.
        try:
            redis_call(ref.detail["address"], "PUBLISH", "chaos:verify", ctx.run_id)
        except (RedisError, OSError) as exc:
            raise FaultStillPresentError(f"{ref.id} still holds commands: PUBLISH got {exc}") from exc
        return super().verify_one(ref, plan, ctx)
