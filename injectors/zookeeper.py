"""ZooKeeper faults on an ensemble: kill the leader or followers, lose the quorum, expire a client's session.

Roles come from the `srvr` four-letter word over a plain socket with a timeout (`Mode: leader`,
`follower`; a server without a quorum answers "not currently serving requests" instead) — never from a
ZooKeeper client library, which blocks while its session is suspended. `ruok` is no health check: it
answers `imok` without a quorum. Killed servers go through `injectors.process` (PID identity checked
with the start time) and are restarted from their recorded command line, on the same data directory.
Verification checks the whole ensemble: every server serves as leader or follower, exactly one leader,
and the same leader for `STABLE_WINDOW_S` (`clients.health.wait_stable`): an election still settling can
show one leader for a moment and another the next.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from clients.errors import NotSettledError
from clients.procs import is_running, spawn
from clients.watch import ChangeWatch
from clients.zk import Ensemble, address_of
from injectors.base import FaultPlan, FaultSpec, Injector, RunContext, TargetRef, TargetResult
from injectors.errors import FaultStillPresentError, InjectionError, SelectionError, TargetNotFoundError
from injectors.network import NetworkDownInjector, NetworkDownSpec, resolve_links
from injectors.process import (
    ProcessKillInjector,
    ProcessKillSpec,
    check_running,
    current_instance,
    process_target,
    verify_instance,
)
from injectors.registry import register
from injectors.selection import Selection, select
from stackspec.targets import LinkTarget, ProcessInstance, ProcessTarget

SRVR_TIMEOUT_S = 1.0
POLL_S = 0.1


def ensemble_of(target: str, ctx: RunContext) -> Ensemble:
    """The ensemble a fault acts on: the servers of `target`."""
    instances = process_target(target, ctx).instances
    return Ensemble(nodes={i.name: address_of(i) for i in instances}, instances={i.name: i for i in instances})


def ensemble_ref(ensemble: Ensemble, name: str, leader: str | None) -> TargetRef:
    """The target ref of one server, refused when its recorded process is not running."""
    instance = ensemble.instances[name]
    if not is_running(instance):
        raise InjectionError(f"{name}'s recorded process (pid {instance.pid}) is not running")
    detail = {"pid": instance.pid, "start_time": instance.start_time, "address": ensemble.nodes[name]}
    return TargetRef(id=name, detail={**detail, "leader": leader})


def healthy(ensemble: Ensemble, timeout_s: float, stable: bool = True) -> dict[str, Any]:
    """`Ensemble.wait_healthy` for a rollback's verification: an ensemble never healthy is a fault still present."""
    try:
        return ensemble.wait_healthy(timeout_s, stable=stable)
    except NotSettledError as exc:
        raise FaultStillPresentError(str(exc)) from exc


class _EnsembleSpec(FaultSpec):
    """What every server-killing ZooKeeper fault needs to restart servers and judge the ensemble healthy."""

    ready_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a restarted server may take to serve (answer `srvr` with a Mode)."
    )
    settle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Verification: how long the ensemble may take to have every server serving and one leader.",
    )


class _KillInjector(Injector[Any]):
    """Kill chosen servers through `injectors.process`; rollback restarts them, verification checks the ensemble."""

    def _process(self) -> ProcessKillInjector:
        return ProcessKillInjector(ProcessKillSpec(ready_timeout_s=self.spec.ready_timeout_s))

    def choose(self, ensemble: Ensemble, select: Selection | None, ctx: RunContext) -> list[str]:
        raise NotImplementedError

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        ensemble = ensemble_of(target, ctx)
        if (reason := ensemble.problem()) is not None:
            raise InjectionError(f"{self.kind} needs a healthy ensemble to start from: {reason}")
        leader = ensemble.leader()
        return [ensemble_ref(ensemble, name, leader) for name in self.choose(ensemble, select, ctx)]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        return self._process().inject_one(ref, plan, ctx)

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        return self._process().rollback_one(ref, plan, ctx)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        detail = check_running(plan, ref, ctx)  # this server's health is judged with the ensemble's
        return {**detail, **healthy(ensemble_of(plan.target, ctx), self.spec.settle_timeout_s)}


def _no_select(kind: str, select: Selection | None) -> None:
    if select is not None:
        raise SelectionError(f"{kind} chooses its servers by their live role; remove `select`")


class ZooKeeperKillLeaderSpec(_EnsembleSpec):
    """SIGKILL the leader and measure the election among the others; rollback restarts it as a follower."""


@register
class ZooKeeperKillLeaderInjector(_KillInjector):
    kind: ClassVar[str] = "zookeeper.kill_leader"
    spec_type: ClassVar[type[FaultSpec]] = ZooKeeperKillLeaderSpec
    summary: ClassVar[str] = "Kill the ZooKeeper leader (SIGKILL) and measure the election; rollback restarts it."

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self._watches: dict[str, ChangeWatch] = {}

    def choose(self, ensemble: Ensemble, select: Selection | None, ctx: RunContext) -> list[str]:
        _no_select(self.kind, select)
        leader = ensemble.leader()
        if leader is None:
            raise InjectionError(f"no single leader in {sorted(ensemble.nodes)} right now")
        return [leader]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        ensemble = ensemble_of(plan.target, ctx)
        others = [name for name in ensemble.nodes if name != ref.id]
        self._watches[ref.id] = ChangeWatch(lambda: ensemble.leader(others))
        try:
            return super().inject_one(ref, plan, ctx)
        except Exception:
            self._watches.pop(ref.id).finish()
            raise

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        election: dict[str, Any] = {}
        if (watch := self._watches.pop(ref.id, None)) is not None:
            after_s, leader = watch.finish()
            what = f"{leader} elected {after_s:.2f}s after" if leader else "no new leader elected during"
            ctx.note(f"{plan.kind}: {what} the kill of leader {ref.id}", elected_after_s=after_s, new_leader=leader)
            election = {"measured": {"elected_after_s": after_s}, "new_leader": leader} if leader else {}
        return {**election, **super().rollback_one(ref, plan, ctx)}


class ZooKeeperKillFollowerSpec(_EnsembleSpec):
    """SIGKILL `count` followers chosen at random (the leader is never hit); rollback restarts them."""

    count: int = Field(default=1, ge=1, description="How many followers to kill (`select` may narrow by name).")


@register
class ZooKeeperKillFollowerInjector(_KillInjector):
    kind: ClassVar[str] = "zookeeper.kill_follower"
    spec_type: ClassVar[type[FaultSpec]] = ZooKeeperKillFollowerSpec
    summary: ClassVar[str] = "Kill ZooKeeper followers (SIGKILL), never the leader; rollback restarts them."

    def choose(self, ensemble: Ensemble, select: Selection | None, ctx: RunContext) -> list[str]:
        if select is not None and (select.all or select.count is not None or select.percent is not None):
            raise SelectionError(f"{self.kind} picks `count` followers (a param); `select` may only filter by name")
        modes = ensemble.modes()
        wanted = Selection(name=select.name if select else None, role="follower", count=self.spec.count)
        return select_names(list(ensemble.nodes), wanted, ctx, modes)


def select_names(names: list[str], selection: Selection, ctx: RunContext, modes: dict[str, str | None]) -> list[str]:
    """`injectors.selection.select` over server names, with the `srvr` Mode as the role."""
    return select(names, selection, ctx.rng, name_of=lambda name: name, role_of=modes.get)


class ZooKeeperLoseQuorumSpec(_EnsembleSpec):
    """SIGKILL a majority of the servers, so the survivors stop serving; rollback restarts them all."""

    include_leader: bool = Field(
        default=True, description="Kill the leader among the majority (else only followers: the leader loses quorum)."
    )


@register
class ZooKeeperLoseQuorumInjector(_KillInjector):
    kind: ClassVar[str] = "zookeeper.lose_quorum"
    spec_type: ClassVar[type[FaultSpec]] = ZooKeeperLoseQuorumSpec
    summary: ClassVar[str] = "Kill a majority of the ZooKeeper servers (no quorum); rollback restarts them."

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self._lost: ChangeWatch | None = None
        self._lost_after_s: float | None = None
        self._restarted_at: float | None = None
        self._spawned: set[str] = set()

    def choose(self, ensemble: Ensemble, select: Selection | None, ctx: RunContext) -> list[str]:
        _no_select(self.kind, select)
        modes = ensemble.modes()
        majority = len(ensemble.nodes) // 2 + 1
        leader = [name for name, mode in modes.items() if mode == "leader"]
        followers = [name for name, mode in modes.items() if mode == "follower"]
        take = leader if self.spec.include_leader else []
        if majority - len(take) > len(followers):
            raise SelectionError(f"{len(ensemble.nodes)} servers: not enough followers for a majority of {majority}")
        return take + sorted(ctx.rng.sample(followers, majority - len(take)))

    def inject(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        ensemble = ensemble_of(plan.target, ctx)
        survivors = [name for name in ensemble.nodes if name not in {ref.id for ref in plan.targets}]
        # The quorum is lost once no survivor serves any more (a surviving leader needs a few ticks to notice).
        self._lost = ChangeWatch(lambda: None if any(ensemble.modes(survivors).values()) else "lost")
        return super().inject(plan, ctx)

    def rollback(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        if self._lost is not None:
            self._lost_after_s = self._lost.finish()[0]
            ctx.note(f"{plan.kind}: the survivors stopped serving {self._lost_after_s}s after the kill")
            self._lost = None
        # Start every killed server before waiting for any: one alone cannot always bring the quorum back.
        self._restarted_at = time.monotonic()
        self._spawned = set()
        for ref in plan.targets:
            instance = current_instance(plan.target, ref, ctx)
            if not is_running(instance):
                with contextlib.suppress(OSError):  # rollback_one tries again and reports
                    ctx.stack.replace_instance(plan.target, spawn(instance))
                    self._spawned.add(ref.id)
        return super().rollback(plan, ctx)

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        detail = super().rollback_one(ref, plan, ctx)
        # The first look that finds the quorum back: this measures the recovery (verification asks for stability).
        settled = healthy(ensemble_of(plan.target, ctx), self.spec.settle_timeout_s, stable=False)
        measured = {"lost_after_s": self._lost_after_s} if self._lost_after_s is not None else {}
        if self._restarted_at is not None:
            measured["quorum_after_s"] = round(time.monotonic() - self._restarted_at, 3)
        restarted = detail["restarted"] or ref.id in self._spawned
        return {**detail, "restarted": restarted, "leader": settled["leader"], "measured": measured}


class ZooKeeperExpireSessionSpec(FaultSpec):
    """Take every link of a ZooKeeper client down for `hold_s` (> session timeout), so its session expires.

    The links come back by themselves after `hold_s`: the client reconnects and learns that its session
    expired (kazoo: state LOST, then a new session). Rollback restores them at once if still down.
    """

    client: str | None = Field(
        default=None,
        description="Instance name of the client whose links go down (e.g. 'matcher-1'); "
        "default: the client(s) of the links `select` picks.",
    )
    session_timeout_s: float = Field(default=2.0, gt=0, description="The client's ZooKeeper session timeout.")
    hold_s: float | None = Field(
        default=None,
        gt=0,
        description="How long the links stay down; more than `session_timeout_s` + 1 s "
        "(default: `session_timeout_s` + 2 s).",
    )
    settle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Verification: how long the client (where the stack runs it as a process) may take to be "
        "healthy and settled in its role again (e.g. a matching engine: follower or leader).",
    )

    @model_validator(mode="after")
    def _longer_than_the_session(self) -> Self:
        if self.hold_s is not None and self.hold_s <= self.session_timeout_s + 1:
            raise ValueError(
                f"hold_s ({self.hold_s:g}s) must be longer than session_timeout_s + 1s "
                f"({self.session_timeout_s + 1:g}s), or the session survives"
            )
        return self

    @property
    def hold_for_s(self) -> float:
        return self.hold_s if self.hold_s is not None else self.session_timeout_s + 2


class _Hold:
    """A link held down: a timer thread brings it back after the hold, unless rollback does first."""

    def __init__(self, hold_s: float, restore: Callable[[], object]) -> None:
        self.downed_at = time.monotonic()
        self.restored_at: float | None = None
        self.error: str | None = None
        self._restore = restore
        self.timer = threading.Timer(hold_s, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self) -> None:
        try:
            self._restore()
        except Exception as exc:  # no caller on this thread: rollback restores the link and reports
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            self.restored_at = time.monotonic()

    def held_s(self) -> float:
        return (self.restored_at or time.monotonic()) - self.downed_at


def _client_process(target: str, ref: TargetRef, ctx: RunContext) -> ProcessInstance | None:
    """The process instance at the client end of a link, when the link target names its process target."""
    group = ctx.stack.target(target)
    if not isinstance(group, LinkTarget) or group.client_target is None:
        return None
    link = next((link for link in group.instances if link.name == ref.id), None)
    if link is None or link.client is None:
        return None
    try:
        clients = ctx.stack.target(group.client_target)
    except TargetNotFoundError:
        return None
    if not isinstance(clients, ProcessTarget):
        return None
    return next((i for i in clients.instances if i.name == link.client), None)


@register
class ZooKeeperExpireSessionInjector(Injector[ZooKeeperExpireSessionSpec]):
    kind: ClassVar[str] = "zookeeper.expire_session"
    spec_type: ClassVar[type[FaultSpec]] = ZooKeeperExpireSessionSpec
    summary: ClassVar[str] = "Cut a client's ZooKeeper links for longer than its session timeout, expiring the session."
    target_kinds: ClassVar[tuple[str, ...]] = ("link",)

    def __init__(self, spec: ZooKeeperExpireSessionSpec) -> None:
        super().__init__(spec)
        self._down = NetworkDownInjector(NetworkDownSpec())
        self._holds: dict[str, _Hold] = {}
        self._clients: dict[str, dict[str, Any]] = {}

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        every = resolve_links(target, Selection(all=True), ctx)
        if self.spec.client is not None:
            if select is not None:
                raise SelectionError(f"{self.kind}: give either params.client or select, not both")
            clients = {self.spec.client}
        else:
            clients = {link.client or link.name for link, _ in resolve_links(target, select, ctx)}
        refs = [ref for link, ref in every if (link.client or link.name) in clients]
        if not refs:
            known = sorted({link.client or link.name for link, _ in every})
            raise SelectionError(f"no link of {target!r} has client {self.spec.client!r}; clients are: {known}")
        for ref in refs:
            ref.detail["hold_s"] = self.spec.hold_for_s
        return refs

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        detail = self._down.inject_one(ref, plan, ctx)
        self._holds[ref.id] = _Hold(self.spec.hold_for_s, lambda: self._down.rollback_one(ref, plan, ctx))
        return {**detail, "hold_s": self.spec.hold_for_s}

    def rollback(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        results = super().rollback(plan, ctx)
        held = [float(r.detail["held_s"]) for r in results if "held_s" in r.detail]
        if held:
            timeout_s = self.spec.session_timeout_s
            outcome = (
                "past the session timeout: the session expired"
                if min(held) > timeout_s
                else f"not past the session timeout ({timeout_s:g}s): the session may have survived; "
                "make the fault last longer than hold_s"
            )
            ctx.note(f"{plan.kind}: {len(held)} link(s) of the client were down {min(held):.1f}s, {outcome}")
        return results

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        hold = self._holds.pop(ref.id, None)
        if hold is None:  # inject never ran here: restore what the plan recorded
            return self._down.rollback_one(ref, plan, ctx)
        hold.timer.cancel()
        held_s = round(hold.held_s(), 3)
        return {**self._down.rollback_one(ref, plan, ctx), "held_s": held_s, "timer_error": hold.error}

    def verify_gone(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        self._clients = {}
        return super().verify_gone(plan, ctx)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        detail = self._down.verify_one(ref, plan, ctx)
        client = _client_process(plan.target, ref, ctx)
        if client is None:  # a client the stack does not run as a process (nothing more to look at)
            return detail
        # Gone means back in a session and in its role: a client that lost its session must have
        # rejoined (a matcher: follower or leader again, not a stuck candidate). Once per client.
        if client.name not in self._clients:
            self._clients[client.name] = verify_instance(client, self.spec.settle_timeout_s)
        return {**detail, "client": client.name, "client_verified": self._clients[client.name]}
