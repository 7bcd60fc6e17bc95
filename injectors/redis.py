"""Redis faults on a Sentinel-managed primary/replica set: kill, freeze, pause, slow down, stop or fail over.

The primary is the node a majority of the Sentinels name (SENTINEL get-master-addr-by-name), mapped
by port to an instance of the `redis` process target. Signals go through `clients.procs`, so a
PID is only signalled while it still carries its recorded start time, and a killed node is restarted
from its recorded command line (same data directory).

Faults that make Sentinel promote a replica measure, on a bounded background thread, how long the
promotion took (`promoted_after_s`) and journal it at rollback. Verification checks the whole set:
every node answers, exactly one is master and it is the Sentinels' primary, every other node
replicates from it with its link up, and every Sentinel agrees, sees its peers and the replicas —
and all of that, with the same primary and the same Sentinel configuration epoch, for
`STABLE_WINDOW_S` (`clients.redis_set.RedisSet.wait_settled`): one look can catch a set that is whole for a
moment while a failover is still under way.

Every Redis call uses a fresh connection with explicit timeouts and no retries: redis-py's default
retries would hide the very faults injected here.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar, Literal

from pydantic import Field
from redis.exceptions import RedisError, ResponseError

from clients.errors import NotSettledError
from clients.health import split_hostport
from clients.procs import is_running
from clients.redis_set import FAST_PING_S, NoPrimaryError, RedisSet, address_of, redis_call
from clients.watch import ChangeWatch
from injectors.base import FaultPlan, FaultSpec, Injector, RunContext, TargetRef, TargetResult
from injectors.errors import (
    FaultStillPresentError,
    InjectionError,
    RollbackError,
    SelectionError,
)
from injectors.process import (
    ProcessKillInjector,
    ProcessKillSpec,
    ProcessPauseInjector,
    ProcessPauseSpec,
    check_running,
    current_instance,
    process_target,
)
from injectors.registry import register
from injectors.selection import Selection

CALL_TIMEOUT_S = 1.0
POLL_S = 0.05


def redis_set_of(target: str, sentinels: str, master: str, ctx: RunContext) -> RedisSet:
    """The Redis set a fault acts on: the nodes of `target`, watched by the Sentinels of `sentinels`."""
    nodes = process_target(target, ctx).instances
    watchers = process_target(sentinels, ctx).instances
    return RedisSet(
        nodes={i.name: address_of(i) for i in nodes},
        sentinels=tuple(address_of(i) for i in watchers),
        master=master,
        instances={i.name: i for i in nodes},
    )


def primary_of(redis_set: RedisSet) -> str:
    """The primary's instance name; InjectionError when the Sentinels do not agree on one."""
    try:
        return redis_set.primary()
    except NoPrimaryError as exc:
        raise InjectionError(str(exc)) from exc


def settled_set(redis_set: RedisSet, timeout_s: float) -> dict[str, Any]:
    """`RedisSet.wait_settled` for a rollback's verification: a set that never settles is a fault still present."""
    try:
        return redis_set.wait_settled(timeout_s)
    except NotSettledError as exc:
        raise FaultStillPresentError(str(exc)) from exc


class _SentinelSpec(FaultSpec):
    """What every Redis fault needs to find the primary and to judge the set healthy again."""

    sentinels: str = Field(default="sentinel", description="Process target of the Sentinels watching the set.")
    master: str = Field(default="trading", description="Master name the Sentinels monitor.")
    settle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Verification: how long replication and the Sentinels may take to settle "
        "(one master, every replica linked to it, every Sentinel agreeing).",
    )


class _RedisInjector(Injector[Any]):
    """Shared behaviour: resolve the Sentinels' primary, watch for promotions, verify the whole set."""

    selectable: ClassVar[bool] = False

    @classmethod
    def referenced_targets(cls, spec: FaultSpec) -> dict[str, str]:
        return {"sentinels": str(getattr(spec, "sentinels", "sentinel"))}

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self._watches: dict[str, ChangeWatch] = {}
        self._rejoined: dict[str, str] = {}  # node → "replica of X", as the rollback restarted it

    def redis_set(self, target: str, ctx: RunContext) -> RedisSet:
        return redis_set_of(target, self.spec.sentinels, self.spec.master, ctx)

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        if select is not None:
            raise SelectionError(f"{self.kind} acts on the primary the Sentinels name; remove `select`")
        redis_set = self.redis_set(target, ctx)
        return [_ref(redis_set, primary_of(redis_set), primary=True)]

    def watch_promotion(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> None:
        """Start measuring the time until the Sentinels name a primary other than `ref`."""
        self._watches[ref.id] = ChangeWatch(self.redis_set(plan.target, ctx).promoted_from(ref.id))

    def promotion(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext, wait_s: float = 0.0) -> dict[str, Any]:
        """Stop the watch of `ref` and journal what it saw (nothing when inject ran in another process)."""
        watch = self._watches.pop(ref.id, None)
        if watch is None:
            return {}
        after_s, new = watch.finish(wait_s)
        if new is None:
            ctx.note(f"{plan.kind}: the Sentinels kept {ref.id} as primary during the fault", primary=ref.id)
            return {"new_primary": None}
        ctx.note(
            f"{plan.kind}: the Sentinels promoted {new} {after_s:.2f}s after the fault on {ref.id}",
            promoted_after_s=after_s,
            old_primary=ref.id,
            new_primary=new,
        )
        return {"measured": {"promoted_after_s": after_s}, "new_primary": new}

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        detail = check_running(plan, ref, ctx)  # this node's health is judged with the set's
        settled = settled_set(self.redis_set(plan.target, ctx), self.spec.settle_timeout_s)
        rejoined = self._rejoined.pop(ref.id, None)
        if rejoined is not None and settled["primary"] == ref.id:
            # Healthy, so the fault is gone — but the Sentinels failed over a second time: the drill must show it.
            ctx.note(
                f"{plan.kind}: {ref.id} rejoined as {rejoined}, then the Sentinels made it primary again",
                second_failover=True,
                primary=ref.id,
            )
            settled["second_failover"] = True
        return {**detail, **settled}


def _ref(redis_set: RedisSet, name: str, primary: bool) -> TargetRef:
    instance = redis_set.instances[name]
    if not is_running(instance):
        raise InjectionError(f"{name}'s recorded process (pid {instance.pid}) is not running")
    detail = {"pid": instance.pid, "start_time": instance.start_time, "address": redis_set.nodes[name]}
    return TargetRef(id=name, detail={**detail, "primary": primary})


class _NodeSpec(_SentinelSpec):
    """A fault that signals Redis processes: how long a restarted or resumed node may take to answer."""

    ready_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a restarted or resumed node may take to answer PING."
    )
    rejoin_wait_s: float = Field(
        default=15.0,
        ge=0,
        description="Rollback, when the Sentinels promoted another node: how long to wait, before this one is "
        "restarted or resumed, until every Sentinel has settled that failover (else it comes back anyway).",
    )


class _SignalInjector(_RedisInjector):
    """Kill or freeze nodes through `injectors.process`, watching the primary for the promotion it causes."""

    def process(self) -> Injector[Any]:
        raise NotImplementedError

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        if ref.detail.get("primary"):
            self.watch_promotion(ref, plan, ctx)  # from before the signal: the measured time includes it
        try:
            return self.process().inject_one(ref, plan, ctx)
        except Exception:
            if (watch := self._watches.pop(ref.id, None)) is not None:
                watch.finish()
            raise

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        promotion = self.promotion(ref, plan, ctx)
        settled: dict[str, Any] = {}
        if _is_down(plan, ref, ctx):
            # A node back during a failover's aftermath can be promoted back by a second, spurious one
            # (see RedisSet.failover_problem): let the Sentinels finish first, then rejoin what they chose.
            settled = self.redis_set(plan.target, ctx).wait_failover_settled(ref.id, self.spec.rejoin_wait_s)
        rejoin = self.rejoin_as(ref, plan, ctx)
        if "replica of" in str(rejoin.get("restarted_as", "")):
            self._rejoined[ref.id] = str(rejoin["restarted_as"])
        return {**promotion, **settled, **rejoin, **self.process().rollback_one(ref, plan, ctx)}

    def rejoin_as(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        """Before a dead node is restarted: make its command line follow the primary the Sentinels name now.

        The recorded `--replicaof` is the topology of when the stack started. Restarted with it, a former
        primary started as a replica would replicate from a replica (no master at all until a slow failover),
        and a node restarted as master after a promotion would be a second master until Sentinel demotes it.
        """
        instance = current_instance(plan.target, ref, ctx)
        if is_running(instance):
            return {}
        redis_set = self.redis_set(plan.target, ctx)
        address = redis_set.sentinel_view()[0]
        primary = redis_set.name_of(address)
        if address is None or primary is None:
            return {}  # no majority names a primary: keep the recorded command line
        argv = _without_replicaof(instance.argv)
        if primary != ref.id:
            host, port = split_hostport(address)
            argv += ["--replicaof", host, str(port)]
        ctx.stack.replace_instance(plan.target, instance.model_copy(update={"argv": argv}))
        return {"restarted_as": "master" if primary == ref.id else f"replica of {primary}"}


def _is_down(plan: FaultPlan, ref: TargetRef, ctx: RunContext) -> bool:
    """The node is not running or still stopped: the rollback is about to bring it back."""
    try:
        check_running(plan, ref, ctx)
    except FaultStillPresentError:
        return True
    return False


def _without_replicaof(argv: list[str]) -> list[str]:
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
        elif arg in ("--replicaof", "--slaveof"):
            skip = 2
        else:
            out.append(arg)
    return out


class RedisKillPrimarySpec(_NodeSpec):
    """SIGKILL the primary; rollback restarts it from its command line and Sentinel makes it a replica."""


@register
class RedisKillPrimaryInjector(_SignalInjector):
    kind: ClassVar[str] = "redis.kill_primary"
    spec_type: ClassVar[type[FaultSpec]] = RedisKillPrimarySpec
    summary: ClassVar[str] = (
        "Kill the Redis primary (SIGKILL) and measure the Sentinel promotion; rollback restarts it."
    )

    def process(self) -> Injector[Any]:
        return ProcessKillInjector(ProcessKillSpec(ready_timeout_s=self.spec.ready_timeout_s))


class RedisFreezeSpec(_NodeSpec):
    """SIGSTOP the primary for the fault's duration (sockets stay open); rollback resumes it with SIGCONT."""


@register
class RedisFreezeInjector(_SignalInjector):
    kind: ClassVar[str] = "redis.freeze"
    spec_type: ClassVar[type[FaultSpec]] = RedisFreezeSpec
    summary: ClassVar[str] = (
        "Freeze the Redis primary (SIGSTOP) and measure the Sentinel promotion; rollback resumes it."
    )

    def process(self) -> Injector[Any]:
        return ProcessPauseInjector(ProcessPauseSpec(ready_timeout_s=self.spec.ready_timeout_s))


class RedisClientPauseSpec(_SentinelSpec):
    """CLIENT PAUSE on the primary: its clients' commands (or only writes) wait until the pause ends."""

    pause_ms: int = Field(gt=0, description="Length of the pause; Redis lifts it by itself after this long.")
    mode: Literal["write", "all"] = Field(
        default="all", description="`all` holds every command (Sentinel's PINGs too); `write` only writes."
    )


@register
class RedisClientPauseInjector(_RedisInjector):
    kind: ClassVar[str] = "redis.client_pause"
    spec_type: ClassVar[type[FaultSpec]] = RedisClientPauseSpec
    summary: ClassVar[str] = "Pause the Redis primary's clients (CLIENT PAUSE, all or writes); rollback unpauses."

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        try:
            reply = redis_call(ref.detail["address"], "CLIENT", "PAUSE", self.spec.pause_ms, self.spec.mode.upper())
        except (RedisError, OSError) as exc:
            raise InjectionError(f"CLIENT PAUSE on {ref.id} ({ref.detail['address']}) failed: {exc}") from exc
        return {
            "address": ref.detail["address"],
            "pause_ms": self.spec.pause_ms,
            "mode": self.spec.mode,
            "reply": reply,
        }

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        # In `all` mode Redis 7.0 holds even CLIENT UNPAUSE until the pause ends: wait for it, boundedly.
        timeout_s = self.spec.pause_ms / 1000 + CALL_TIMEOUT_S
        started = time.monotonic()
        try:
            redis_call(ref.detail["address"], "CLIENT", "UNPAUSE", timeout_s=timeout_s)
        except (RedisError, OSError) as exc:
            raise RollbackError(f"CLIENT UNPAUSE on {ref.id} ({ref.detail['address']}) failed: {exc}") from exc
        return {"address": ref.detail["address"], "unpaused_after_s": round(time.monotonic() - started, 3)}

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        # PUBLISH is held by both pause modes (it may replicate) and changes no data.
        try:
            redis_call(ref.detail["address"], "PUBLISH", "chaos:verify", ctx.run_id)
        except (RedisError, OSError) as exc:
            raise FaultStillPresentError(f"{ref.id} still holds commands: PUBLISH got {exc}") from exc
        return super().verify_one(ref, plan, ctx)


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


class _Sleeper:
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


class RedisSlowSpec(_SentinelSpec):
    """Block the primary with DEBUG SLEEP `sleep_ms` every `interval_ms` (needs `enable-debug-command`)."""

    sleep_ms: int = Field(gt=0, description="How long each DEBUG SLEEP blocks the whole server.")
    interval_ms: int = Field(
        default=1000, gt=0, description="Time from the start of one sleep to the next (back to back when shorter)."
    )
    limit_s: float = Field(
        default=600.0, gt=0, description="Safety limit: the sleeps stop by themselves after this long."
    )


@register
class RedisSlowInjector(_RedisInjector):
    kind: ClassVar[str] = "redis.slow"
    spec_type: ClassVar[type[FaultSpec]] = RedisSlowSpec
    summary: ClassVar[str] = "Block the Redis primary with periodic DEBUG SLEEPs; rollback stops them."

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self._sleepers: dict[str, _Sleeper] = {}

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        refs = super().resolve(target, select, ctx)
        for ref in refs:
            check_debug(ref.detail["address"])  # at preflight too: DEBUG SLEEP 0 changes nothing
        return refs

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        check_debug(ref.detail["address"])
        spec = self.spec
        self._sleepers[ref.id] = _Sleeper(
            ref.detail["address"], spec.sleep_ms / 1000, spec.interval_ms / 1000, spec.limit_s
        )
        return {"address": ref.detail["address"], "sleep_ms": spec.sleep_ms, "interval_ms": spec.interval_ms}

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        sleeper = self._sleepers.pop(ref.id, None)
        if sleeper is None:  # never injected here, or injected by a process that is gone with its thread
            return {"stopped": False}
        sleeper.stop()
        return {"stopped": True, "sleeps": sleeper.sleeps, "errors": sleeper.errors[-3:]}

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
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
        return {"ping_ms": round(min(took) * 1000, 1), **super().verify_one(ref, plan, ctx)}


class RedisOutageSpec(_NodeSpec):
    """SIGSTOP every Redis node of the target, replicas first; rollback resumes them, the primary first."""


@register
class RedisOutageInjector(RedisFreezeInjector):
    kind: ClassVar[str] = "redis.outage"
    spec_type: ClassVar[type[FaultSpec]] = RedisOutageSpec
    summary: ClassVar[str] = "Stop every Redis node (SIGSTOP: connections hang); rollback resumes them, primary first."

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        if select is not None:
            raise SelectionError(f"{self.kind} stops every node of {target!r}; remove `select`")
        redis_set = self.redis_set(target, ctx)
        primary = primary_of(redis_set)
        return [_ref(redis_set, name, name == primary) for name in sorted(redis_set.nodes, key=lambda n: n == primary)]

    def rollback(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        # The plan lists the primary last: resume it first, so the Sentinels see it back before any replica.
        # (A failover Sentinel began against a frozen replica it had not yet seen down may still complete.)
        return super().rollback(plan.model_copy(update={"targets": plan.targets[::-1]}), ctx)


class RedisFailoverSpec(_SentinelSpec):
    """SENTINEL FAILOVER: a planned switch of the primary to a replica; the topology is not switched back."""

    promotion_timeout_s: float = Field(
        default=30.0, gt=0, description="Rollback: how long to wait for the Sentinels to name the new primary."
    )


@register
class RedisFailoverInjector(_RedisInjector):
    kind: ClassVar[str] = "redis.failover"
    spec_type: ClassVar[type[FaultSpec]] = RedisFailoverSpec
    summary: ClassVar[str] = "Force a Sentinel failover of the primary and measure it; rollback only verifies health."

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        redis_set = self.redis_set(plan.target, ctx)
        refused: list[str] = []
        self.watch_promotion(ref, plan, ctx)
        for sentinel in redis_set.sentinels:
            try:
                redis_call(sentinel, "SENTINEL", "FAILOVER", redis_set.master)
            except (RedisError, OSError) as exc:
                refused.append(f"{sentinel}: {exc}")
                continue
            return {"sentinel": sentinel, "old_primary": ref.id, "refused_by": refused}
        self._watches.pop(ref.id).finish()
        raise InjectionError(f"no Sentinel started a failover of {redis_set.master!r}: {'; '.join(refused)}")

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        # Nothing to undo: every node is as healthy as before, only the roles changed (see docs/injectors.md).
        return self.promotion(ref, plan, ctx, wait_s=self.spec.promotion_timeout_s)
