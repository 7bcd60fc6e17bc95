"""What the Redis kinds share: finding the Sentinels' primary, measuring promotions, verifying the whole set.

The primary is the node a majority of the Sentinels name (SENTINEL get-master-addr-by-name), mapped
by port to an instance of the `redis` process target. Signals go through the process kinds, so a PID
is only signalled while it still carries its recorded start time, and a killed node is restarted from
its recorded command line (same data directory).

Faults that make Sentinel promote a replica measure, on a bounded background thread, how long the
promotion took (`promoted_after_s`) and report it at rollback. Verification checks the whole set:
every node answers, exactly one is master and it is the Sentinels' primary, every other node
replicates from it with its link up, and every Sentinel agrees, sees its peers and the replicas —
and all of that, with the same primary and the same Sentinel configuration epoch, for
`STABLE_WINDOW_S` (`clients.redis_set.RedisSet.wait_settled`): one look can catch a set that is whole for a
moment while a failover is still under way.

A node may run on another host (its instance has `host:`): signals and restarts then go over SSH, through
the process kinds' hosts, one connection per host for a whole step; Sentinel and the nodes are asked over
the network at their addresses (the health check, else `ports.client` on the host's address).

Every Redis call uses a fresh connection with explicit timeouts and no retries: redis-py's default
retries would hide the very faults injected here.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import Any, ClassVar, TypeVar

from pydantic import Field, JsonValue

from clients.errors import NotSettledError
from clients.health import split_hostport
from clients.procs import ProcessHosts, is_running
from clients.redis_set import NoPrimaryError, RedisSet, address_of
from clients.watch import ChangeWatch
from injectors.base import FaultPlan, FaultSpec, Injector, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError, SelectionError, TargetNotFoundError
from injectors.process.common import (
    ProcessFault,
    check_running,
    current_instance,
    found_by_rules,
    managed,
    process_target,
    refuse_loopback,
    where,
)
from injectors.selection import Selection


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


def settled_set(redis_set: RedisSet, timeout_s: float) -> dict[str, JsonValue]:
    """`RedisSet.wait_settled` for a rollback's verification: a set that never settles is a fault still present."""
    try:
        return redis_set.wait_settled(timeout_s)
    except NotSettledError as exc:
        raise FaultStillPresentError(str(exc)) from exc


def node_ref(
    redis_set: RedisSet, name: str, primary: bool, hosts: ProcessHosts, unmatched: dict[str, str] | None = None
) -> TargetRef:
    """The target ref of one node, refused when its `match` rules found no process or it is not running."""
    if unmatched and name in unmatched:
        raise TargetNotFoundError(unmatched[name])
    instance = redis_set.instances[name]
    if not is_running(instance, hosts):
        raise InjectionError(f"{name}'s recorded process (pid {instance.pid}) is not running")
    detail = {
        "pid": instance.pid,
        "start_time": instance.start_time,
        "address": redis_set.nodes[name],
        **where(instance),
    }
    return TargetRef(id=name, detail={**detail, "primary": primary})


class SentinelSpec(FaultSpec):
    """What every Redis fault needs to find the primary and to judge the set healthy again."""

    sentinels: str = Field(default="sentinel", description="Process target of the Sentinels watching the set.")
    master: str = Field(default="trading", description="Master name the Sentinels monitor.")
    settle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Verification: how long replication and the Sentinels may take to settle "
        "(one master, every replica linked to it, every Sentinel agreeing).",
    )


SentinelSpecT = TypeVar("SentinelSpecT", bound=SentinelSpec, covariant=True)


class RedisInjector(Injector[SentinelSpecT]):
    """Shared behaviour: resolve the Sentinels' primary, watch for promotions, verify the whole set."""

    selectable: ClassVar[bool] = False

    @classmethod
    def referenced_targets(cls, spec: FaultSpec) -> dict[str, str]:
        return {"sentinels": spec.sentinels} if isinstance(spec, SentinelSpec) else {}

    def __init__(self, spec: SentinelSpecT) -> None:
        super().__init__(spec)
        self.hosts = ProcessHosts()  # SSH connections to the nodes' hosts, shared by a step, closed at its end
        self._watches: dict[str, ChangeWatch] = {}
        self._rejoined: dict[str, str] = {}  # node → "replica of X", as the rollback restarted it

    def session(self) -> AbstractContextManager[object]:
        return self.hosts

    def redis_set(self, target: str, ctx: RunContext) -> RedisSet:
        return redis_set_of(target, self.spec.sentinels, self.spec.master, ctx)

    def resolved_set(self, target: str, ctx: RunContext) -> tuple[RedisSet, dict[str, str]]:
        """The set at resolve: nodes with `match` rules found on their hosts (and, by name, why one was not);
        a node or Sentinel on another host at a loopback address refused."""
        _, unmatched = found_by_rules(target, ctx, self.hosts)
        redis_set = self.redis_set(target, ctx)
        for name, instance in redis_set.instances.items():
            refuse_loopback(target, instance, redis_set.nodes[name])
        for sentinel, address in zip(
            process_target(self.spec.sentinels, ctx).instances, redis_set.sentinels, strict=True
        ):
            refuse_loopback(self.spec.sentinels, sentinel, address)
        return redis_set, unmatched

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        if select is not None:
            raise SelectionError(f"{self.kind} acts on the primary the Sentinels name; remove `select`")
        redis_set, unmatched = self.resolved_set(target, ctx)
        return [node_ref(redis_set, primary_of(redis_set), True, self.hosts, unmatched)]

    def watch_promotion(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> None:
        """Start measuring the time until the Sentinels name a primary other than `ref`."""
        self._watches[ref.id] = ChangeWatch(self.redis_set(plan.target, ctx).promoted_from(ref.id))

    def stop_watching(self, ref: TargetRef) -> None:
        """The injection failed: nothing to measure."""
        if (watch := self._watches.pop(ref.id, None)) is not None:
            watch.finish()

    def promotion(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext, wait_s: float = 0.0) -> Outcome:
        """Stop the watch of `ref` and report what it saw (nothing when inject ran in another process)."""
        watch = self._watches.pop(ref.id, None)
        if watch is None:
            return Outcome()
        after_s, new = watch.finish(wait_s)
        if new is None or after_s is None:
            ctx.note(f"{plan.kind}: the Sentinels kept {ref.id} as primary during the fault", primary=ref.id)
            return Outcome(detail={"new_primary": None})
        ctx.note(
            f"{plan.kind}: the Sentinels promoted {new} {after_s:.2f}s after the fault on {ref.id}",
            promoted_after_s=after_s,
            old_primary=ref.id,
            new_primary=new,
        )
        return Outcome(detail={"new_primary": new}, measured={"promoted_after_s": after_s})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        detail = check_running(plan, ref, ctx, self.hosts)  # this node's health is judged with the set's
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
        return Outcome(detail={**detail, **settled})


class NodeSpec(SentinelSpec):
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


NodeSpecT = TypeVar("NodeSpecT", bound=NodeSpec, covariant=True)


class SignalInjector(RedisInjector[NodeSpecT]):
    """Kill or freeze nodes through the process kinds, watching the primary for the promotion it causes."""

    def __init__(self, spec: NodeSpecT) -> None:
        super().__init__(spec)
        self._process: ProcessFault[Any] | None = None

    @abstractmethod
    def make_process(self) -> ProcessFault[Any]:
        """The process kind that signals a node (and brings it back), sharing `self.hosts`."""

    def process(self) -> Injector[FaultSpec]:
        """The process kind, built once for this fault."""
        if self._process is None:
            self._process = self.make_process()
        return self._process

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        if ref.detail.get("primary"):
            self.watch_promotion(ref, plan, ctx)  # from before the signal: the measured time includes it
        try:
            return self.process().inject_one(ref, plan, ctx)
        except Exception:
            self.stop_watching(ref)
            raise

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        promotion = self.promotion(ref, plan, ctx)
        settled: dict[str, JsonValue] = {}
        if _is_down(plan, ref, ctx, self.hosts):
            # A node back during a failover's aftermath can be promoted back by a second, spurious one
            # (see RedisSet.failover_problem): let the Sentinels finish first, then rejoin what they chose.
            settled = self.redis_set(plan.target, ctx).wait_failover_settled(ref.id, self.spec.rejoin_wait_s)
        rejoin = self.rejoin_as(ref, plan, ctx)
        if "replica of" in str(rejoin.get("restarted_as", "")):
            self._rejoined[ref.id] = str(rejoin["restarted_as"])
        restarted = self.process().rollback_one(ref, plan, ctx)
        return promotion | Outcome(detail={**settled, **rejoin}) | restarted

    def rejoin_as(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, JsonValue]:
        """Before a dead node is restarted: make its command line follow the primary the Sentinels name now.

        The recorded `--replicaof` is the topology of when the stack started. Restarted with it, a former
        primary started as a replica would replicate from a replica (no master at all until a slow failover),
        and a node restarted as master after a promotion would be a second master until Sentinel demotes it.
        """
        instance = current_instance(plan.target, ref, ctx)
        if is_running(instance, self.hosts) or managed(instance) is not None:
            return {}  # running, or brought back by its service manager with its own configuration
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


def _is_down(plan: FaultPlan, ref: TargetRef, ctx: RunContext, hosts: ProcessHosts) -> bool:
    """The node is not running or still stopped: the rollback is about to bring it back."""
    try:
        check_running(plan, ref, ctx, hosts)
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
