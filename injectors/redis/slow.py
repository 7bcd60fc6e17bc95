"""`redis.slow`: block the Redis primary with periodic DEBUG SLEEPs; rollback stops them."""

from __future__ import annotations

import threading
import time
from typing import ClassVar

from pydantic import Field
from redis.exceptions import RedisError, ResponseError

from clients.redis_set import CALL_TIMEOUT_S, FAST_PING_S, redis_call
from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError
from injectors.redis.common import RedisInjector, SentinelSpec
from injectors.registry import register
from injectors.selection import Selection


def check_debug(address: str) -> None:
    """Raise InjectionError unless DEBUG is allowed (Redis 7 disables it unless `enable-debug-command`)."""
    try:
        redis_call(address, "DEBUG", "SLEEP", 0)
    except ResponseError as exc:
        raise InjectionError(
            f"Redis at {address} refuses DEBUG ({exc}); start redis-server with `--enable-debug-command local`"
        ) from exc
    except (RedisError, OSError) as exc:
        raise InjectionError(f"Redis at {address} does not answer DEBUG SLEEP 0: {exc}") from exc


class Sleeper:
    """Sends DEBUG SLEEP every `interval_s` on a daemon thread until stopped or `limit_s` has passed."""

    def __init__(self, address: str, sleep_s: float, interval_s: float, limit_s: float) -> None:
        self.address, self.sleep_s, self.interval_s, self.limit_s = address, sleep_s, interval_s, limit_s
        self.sleeps = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-redis-slow", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < self.limit_s:
            began = time.monotonic()
            try:
                redis_call(self.address, "DEBUG", "SLEEP", self.sleep_s, timeout_s=self.sleep_s + CALL_TIMEOUT_S)
                self.sleeps += 1
            except (RedisError, OSError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.sleep_s + CALL_TIMEOUT_S * 2)


class RedisSlowSpec(SentinelSpec):
    """Block the primary with DEBUG SLEEP `sleep_ms` every `interval_ms` (needs `enable-debug-command`)."""

    sleep_ms: int = Field(gt=0, description="How long each DEBUG SLEEP blocks the whole server.")
    interval_ms: int = Field(
        default=1000, gt=0, description="Time from the start of one sleep to the next (back to back when shorter)."
    )
    limit_s: float = Field(
        default=600.0, gt=0, description="Safety limit: the sleeps stop by themselves after this long."
    )


@register
class RedisSlowInjector(RedisInjector[RedisSlowSpec]):
    """Block the Redis primary with periodic DEBUG SLEEPs; rollback stops them."""

    kind: ClassVar[str] = "redis.slow"
    spec_type: ClassVar[type[FaultSpec]] = RedisSlowSpec

    def __init__(self, spec: RedisSlowSpec) -> None:
        super().__init__(spec)
        self._sleepers: dict[str, Sleeper] = {}

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        refs = super().find_targets(target, select, ctx)
        for ref in refs:
            check_debug(ref.detail["address"])  # at preflight too: DEBUG SLEEP 0 changes nothing
        return refs

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        address = str(ref.detail["address"])
        check_debug(address)
        spec = self.spec
        self._sleepers[ref.id] = Sleeper(address, spec.sleep_ms / 1000, spec.interval_ms / 1000, spec.limit_s)
        return Outcome(detail={"address": address, "sleep_ms": spec.sleep_ms, "interval_ms": spec.interval_ms})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        sleeper = self._sleepers.pop(ref.id, None)
        if sleeper is None:  # never injected here, or injected by a process that is gone with its thread
            return Outcome(detail={"stopped": False})
        sleeper.stop()
        return Outcome(detail={"stopped": True, "sleeps": sleeper.sleeps, "errors": list(sleeper.errors[-3:])})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        took = []
        for _ in range(3):
            started = time.monotonic()
            try:
                redis_call(ref.detail["address"], "PING", timeout_s=CALL_TIMEOUT_S * 2)
            except (RedisError, OSError) as exc:
                raise FaultStillPresentError(f"{ref.id} does not answer PING: {exc}") from exc
            took.append(time.monotonic() - started)
        if min(took) > FAST_PING_S:
            raise FaultStillPresentError(f"{ref.id} is still slow: PING took {min(took):.2f}s at best")
        return Outcome(detail={"ping_ms": round(min(took) * 1000, 1)}) | super().verify_one(ref, plan, ctx)
