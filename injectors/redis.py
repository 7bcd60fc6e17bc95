"""Redis faults on a Sentinel-managed primary/replica set: kill, freeze, pause, slow down, stop or fail over.

The primary is the node a majority of the Sentinels name (SENTINEL get-master-addr-by-name), mapped
by port to an instance of the `redis` process target. Signals go through `injectors.process`, so a
PID is only signalled while it still carries its recorded start time, and a killed node is restarted
from its recorded command line (same data directory).

Faults that make Sentinel promote a replica measure, on a bounded background thread, how long the
promotion took (`promoted_after_s`) and journal it at rollback. Verification checks the whole set:
every node answers, exactly one is master and it is the Sentinels' primary, every other node
replicates from it with its link up, and every Sentinel agrees, sees its peers and the replicas —
and all of that, with the same primary and the same Sentinel configuration epoch, for
`STABLE_WINDOW_S` (`injectors.health.wait_stable`): one look can catch a set that is whole for a
moment while a failover is still under way.

Every Redis call uses a fresh connection with explicit timeouts and no retries: redis-py's default
retries would hide the very faults injected here.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from injectors.base import FaultPlan, FaultSpec, Injector, RunContext, TargetRef, TargetResult
from injectors.errors import (
    FaultStillPresentError,
    InjectionError,
    RollbackError,
    SelectionError,
    TargetNotFoundError,
)
from injectors.health import split_hostport, wait_stable
from injectors.process import (
    ProcessKillInjector,
    ProcessKillSpec,
    ProcessPauseInjector,
    ProcessPauseSpec,
    check_running,
    current_instance,
    is_running,
    process_target,
)
from injectors.registry import register
from injectors.selection import Selection
from injectors.targets import ProcessInstance, RedisHealth

CALL_TIMEOUT_S = 1.0
POLL_S = 0.05
WATCH_LIMIT_S = 120.0
FAST_PING_S = 0.25
_DOWN_FLAGS = frozenset({"s_down", "o_down", "disconnected"})


def redis_call(address: str, *args: str | int | float, timeout_s: float = CALL_TIMEOUT_S) -> Any:
    """One command on a fresh connection, with connect and read timeouts and no retries."""
    host, port = split_hostport(address)
    client = Redis(
        host=host,
        port=port,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    try:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]
    finally:
        client.close()


def _pairs(reply: Any) -> dict[str, str]:
    """A SENTINEL MASTER (or SENTINEL REPLICAS entry) reply as a dict: a map in RESP3, flat pairs in RESP2."""
    if isinstance(reply, dict):
        return {str(key): str(value) for key, value in reply.items()}
    items = [str(item) for item in reply or []]
    return dict(zip(items[::2], items[1::2], strict=False))


def address_of(instance: ProcessInstance) -> str:
    """host:port of a Redis or Sentinel instance: its Redis health check, else its `client` port on loopback."""
    if isinstance(instance.health, RedisHealth):
        return instance.health.redis
    if "client" in instance.ports:
        return f"127.0.0.1:{instance.ports['client']}"
    raise TargetNotFoundError(f"instance {instance.name!r} has no Redis health check and no `client` port")


class ChangeWatch:
    """Polls `probe` on a daemon thread until it returns a value (the change happened) or `limit_s` passes.

    Never blocks its caller; `finish` stops it and says when (seconds after the start) and what was seen.
    """

    def __init__(self, probe: Callable[[], str | None], limit_s: float = WATCH_LIMIT_S) -> None:
        self._probe = probe
        self._limit_s = limit_s
        self._stop = threading.Event()
        self._done = threading.Event()
        self.started = time.monotonic()
        self.after_s: float | None = None
        self.value: str | None = None
        self._thread = threading.Thread(target=self._run, name="chaos-change-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                last = self._stop.is_set() or time.monotonic() - self.started >= self._limit_s
                try:
                    value = self._probe()
                except Exception:  # a probe that fails has not seen the change: keep watching
                    value = None
                if value is not None:
                    self.after_s, self.value = time.monotonic() - self.started, value
                    return
                if last:  # one more probe after the stop: a change seen just now still counts
                    return
                self._stop.wait(POLL_S)
        finally:
            self._done.set()

    def finish(self, wait_s: float = 0.0) -> tuple[float | None, str | None]:
        """Wait up to `wait_s` for the change, then stop watching; (seconds after the start, value) or Nones."""
        self._done.wait(wait_s)
        self._stop.set()
        self._thread.join(timeout=CALL_TIMEOUT_S * 5)
        return (round(self.after_s, 3) if self.after_s is not None else None), self.value


@dataclass(frozen=True)
class RedisSet:
    """The Redis nodes of a target (instance name → host:port) and the Sentinels that watch them."""

    nodes: dict[str, str]
    sentinels: tuple[str, ...]
    master: str
    instances: dict[str, ProcessInstance] = field(default_factory=dict)

    @classmethod
    def of(cls, target: str, sentinels: str, master: str, ctx: RunContext) -> RedisSet:
        nodes = process_target(target, ctx).instances
        watchers = process_target(sentinels, ctx).instances
        return cls(
            nodes={i.name: address_of(i) for i in nodes},
            sentinels=tuple(address_of(i) for i in watchers),
            master=master,
            instances={i.name: i for i in nodes},
        )

    def name_of(self, address: str | None) -> str | None:
        """The node at `address`: the same host:port, else the only node on that port (Sentinel may spell
        the host differently from the stack description)."""
        if address is None:
            return None
        exact = [name for name, addr in self.nodes.items() if addr == address]
        port = split_hostport(address)[1]
        by_port = [name for name, addr in self.nodes.items() if split_hostport(addr)[1] == port]
        return exact[0] if exact else by_port[0] if len(by_port) == 1 else None

    def sentinel_view(self) -> tuple[str | None, dict[str, str | None]]:
        """The primary (host:port) a majority of the Sentinels name, or None, and each Sentinel's answer."""
        answers: dict[str, str | None] = {}
        for sentinel in self.sentinels:
            try:
                reply = redis_call(sentinel, "SENTINEL", "get-master-addr-by-name", self.master)
            except (RedisError, OSError):
                reply = None
            answers[sentinel] = f"{reply[0]}:{reply[1]}" if reply else None
        counts = Counter(answer for answer in answers.values() if answer is not None).most_common(1)
        if counts and counts[0][1] > len(self.sentinels) // 2:
            return counts[0][0], answers
        return None, answers

    def primary(self) -> str:
        """The instance name of the primary the Sentinels agree on; raises InjectionError when they do not."""
        address, answers = self.sentinel_view()
        name = self.name_of(address)
        if name is None:
            seen = ", ".join(f"{s}: {a or 'no answer'}" for s, a in answers.items())
            raise InjectionError(
                f"no majority of Sentinels names a primary of {self.master!r} among {sorted(self.nodes)} ({seen})"
            )
        return name

    def promoted_from(self, old: str) -> Callable[[], str | None]:
        """A probe for ChangeWatch: the new primary's name once a majority of Sentinels name another node."""

        def probe() -> str | None:
            name = self.name_of(self.sentinel_view()[0])
            return name if name is not None and name != old else None

        return probe

    def problem(self) -> str | None:
        """None when the set is healthy (see the module docstring), else the first thing found wrong."""
        return self.look()[0]

    def look(self) -> tuple[str | None, tuple[str, int] | None]:
        """One look for `wait_stable`: (None, (primary, Sentinel config epoch)) when healthy, else (why not, None)."""
        infos: dict[str, dict[str, Any]] = {}
        for name, address in self.nodes.items():
            try:
                infos[name] = dict(redis_call(address, "INFO", "replication"))
            except (RedisError, OSError) as exc:
                return f"{name} ({address}) does not answer: {exc}", None
        masters = sorted(name for name, info in infos.items() if info.get("role") == "master")
        if len(masters) != 1:
            return f"expected exactly one node with role master, found {masters or 'none'}", None
        primary = masters[0]
        reported, answers = self.sentinel_view()
        if self.name_of(reported) != primary:
            return f"{primary} is the master but the Sentinels name {reported or 'no majority'} ({answers})", None
        port = split_hostport(self.nodes[primary])[1]
        replicas = [name for name in self.nodes if name != primary]
        for name in replicas:
            info = infos[name]
            if (info.get("role"), int(info.get("master_port", 0)), info.get("master_link_status")) != (
                "slave",
                port,
                "up",
            ):
                return (
                    f"{name} is not an up-to-date replica of {primary} (role {info.get('role')}, "
                    f"master port {info.get('master_port')}, link {info.get('master_link_status')})"
                ), None
        epochs = set()
        for sentinel in self.sentinels:
            reason, epoch = self._sentinel_look(sentinel, primary, replicas)
            if reason is not None:
                return reason, None
            epochs.add(epoch)
        if len(epochs) != 1:  # a Sentinel that has not caught up with the last failover yet
            return f"the Sentinels' configuration epochs differ ({sorted(epochs)})", None
        return None, (primary, epochs.pop())

    def _sentinel_look(self, sentinel: str, primary: str, replicas: list[str]) -> tuple[str | None, int]:
        try:
            master = _pairs(redis_call(sentinel, "SENTINEL", "MASTER", self.master))
            listed = [_pairs(r) for r in redis_call(sentinel, "SENTINEL", "REPLICAS", self.master)]
        except (RedisError, OSError) as exc:
            return f"sentinel {sentinel} does not answer about {self.master!r}: {exc}", 0
        epoch = int(master.get("config-epoch", 0))
        if self.name_of(f"{master.get('ip')}:{master.get('port')}") != primary or master.get("flags") != "master":
            return f"sentinel {sentinel} sees {master.get('ip')}:{master.get('port')} ({master.get('flags')})", epoch
        others = int(master.get("num-other-sentinels", 0))
        if others < len(self.sentinels) - 1:
            return f"sentinel {sentinel} knows {others} other Sentinels, expected {len(self.sentinels) - 1}", epoch
        seen = {self.name_of(f"{r.get('ip')}:{r.get('port')}"): r for r in listed}
        for name in replicas:
            entry = seen.get(name)
            if entry is None:
                return f"sentinel {sentinel} does not list {name} among the replicas", epoch
            # Not its cached master-link-status: Sentinel refreshes a replica's INFO only every 10 s.
            if set(entry.get("flags", "").split(",")) & _DOWN_FLAGS:
                return f"sentinel {sentinel} sees replica {name} as {entry.get('flags')}", epoch
        return None, epoch

    def failover_problem(self, node: str) -> str | None:
        """Before `node` comes back: None while `node` is still the primary, or once the Sentinels have settled
        on another primary; else what is still going on.

        Settled means: every Sentinel names the new primary, flags it plain `master`, has its PING answered,
        and no longer holds its peers' "master is down" answers. Sentinel (7.0) keeps those answers for 5 s
        after the last one and counts them for the *new* primary too, whose first PING can stay unanswered
        for the whole down-after (1,000 ms here) while the Sentinel reconnects: in that window one
        Sentinel's doubt is a quorum at once and it fails over again — to `node`, if it has rejoined as a
        replica by then. Seen here: +sdown of the new primary 1.005 s after +switch-master, -sdown 93 ms
        later, +odown "#quorum 3/2" although no other Sentinel had it down, and the old primary promoted back.
        """
        address, answers = self.sentinel_view()
        if address is None:
            return f"no majority of Sentinels names a primary ({answers})"
        primary = self.name_of(address)
        if primary == node:
            # Still the primary: nothing was promoted, and bringing it back is what ends the outage (a
            # failover still under way against it can only demote it later, never promote it back).
            return None
        for sentinel in self.sentinels:
            try:
                master = _pairs(redis_call(sentinel, "SENTINEL", "MASTER", self.master))
                peers = [_pairs(p) for p in redis_call(sentinel, "SENTINEL", "SENTINELS", self.master)]
            except (RedisError, OSError) as exc:
                return f"sentinel {sentinel} does not answer about {self.master!r}: {exc}"
            flags = set(master.get("flags", "").split(","))
            if flags & {"o_down", "failover_in_progress"}:
                return f"sentinel {sentinel} is failing over ({master.get('flags')})"
            if self.name_of(f"{master.get('ip')}:{master.get('port')}") != primary:
                return f"sentinel {sentinel} still names {master.get('ip')}:{master.get('port')}"
            if flags != {"master"} or int(master.get("last-ping-sent", 0)) > FAST_PING_S * 1000:
                return f"sentinel {sentinel} has not seen {primary} answer yet ({master.get('flags')})"
            doubting = [p.get("name", "?") for p in peers if "master_down" in p.get("flags", "").split(",")]
            if doubting:
                return f"sentinel {sentinel} still counts {len(doubting)} peer(s) saying the primary is down"
        return None

    def wait_failover_settled(self, node: str, timeout_s: float) -> dict[str, Any]:
        """Poll `failover_problem` for at most `timeout_s`; never raises (a rollback goes on either way)."""
        started = time.monotonic()
        while (reason := self.failover_problem(node)) is not None:
            if time.monotonic() - started >= timeout_s:
                return {"failover_settled": False, "failover_unsettled": reason}
            time.sleep(POLL_S * 2)
        return {"failover_settled_after_s": round(time.monotonic() - started, 3)}

    def wait_settled(self, timeout_s: float) -> dict[str, Any]:
        """Poll until healthy and unchanged for STABLE_WINDOW_S; the primary and seconds waited, else
        FaultStillPresentError with the last reason."""
        try:
            settled, waited = wait_stable(self.look, timeout_s, poll_s=POLL_S * 4)
        except TimeoutError as exc:
            raise FaultStillPresentError(f"the Redis set did not settle: {exc}") from exc
        assert settled is not None  # a look without a problem always names the primary
        primary, epoch = settled
        return {"primary": primary, "config_epoch": epoch, "settled_after_s": waited}


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
        return RedisSet.of(target, self.spec.sentinels, self.spec.master, ctx)

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        if select is not None:
            raise SelectionError(f"{self.kind} acts on the primary the Sentinels name; remove `select`")
        redis_set = self.redis_set(target, ctx)
        return [_ref(redis_set, redis_set.primary(), primary=True)]

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
        settled = self.redis_set(plan.target, ctx).wait_settled(self.spec.settle_timeout_s)
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
        primary = redis_set.primary()
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
