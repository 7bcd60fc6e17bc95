"""`zookeeper.expire_session`: cut a client's ZooKeeper links for longer than its session timeout, expiring it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import ClassVar, Self

from pydantic import Field, JsonValue, model_validator

from clients.procs import ProcessHosts
from injectors.base import FaultPlan, FaultSpec, Injector, Outcome, RunContext, TargetRef, TargetResult
from injectors.errors import SelectionError, TargetNotFoundError
from injectors.network.common import resolve_links
from injectors.network.down import NetworkDownInjector, NetworkDownSpec
from injectors.process.common import verify_instance
from injectors.registry import register
from injectors.selection import Selection
from stackspec.targets import LinkTarget, ProcessInstance, ProcessTarget


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


class Hold:
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


def client_process(target: str, ref: TargetRef, ctx: RunContext) -> ProcessInstance | None:
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
    """Cut a client's ZooKeeper links for longer than its session timeout, expiring the session."""

    kind: ClassVar[str] = "zookeeper.expire_session"
    spec_type: ClassVar[type[FaultSpec]] = ZooKeeperExpireSessionSpec
    target_kinds: ClassVar[tuple[str, ...]] = ("link",)

    def __init__(self, spec: ZooKeeperExpireSessionSpec) -> None:
        super().__init__(spec)
        self._down = NetworkDownInjector(NetworkDownSpec())
        self.hosts = ProcessHosts()  # the clients' hosts (a client on another host is looked at over SSH)
        self._holds: dict[str, Hold] = {}
        self._clients: dict[str, dict[str, JsonValue]] = {}

    def session(self) -> AbstractContextManager[object]:
        return self.hosts

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
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

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        downed = self._down.inject_one(ref, plan, ctx)
        self._holds[ref.id] = Hold(self.spec.hold_for_s, lambda: self._down.rollback_one(ref, plan, ctx))
        return downed | Outcome(detail={"hold_s": self.spec.hold_for_s})

    def rollback_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        results = super().rollback_all(plan, ctx)
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

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        hold = self._holds.pop(ref.id, None)
        if hold is None:  # inject never ran here: restore what the plan recorded
            return self._down.rollback_one(ref, plan, ctx)
        hold.timer.cancel()
        held_s = round(hold.held_s(), 3)
        return self._down.rollback_one(ref, plan, ctx) | Outcome(detail={"held_s": held_s, "timer_error": hold.error})

    def verify_all(self, plan: FaultPlan, ctx: RunContext) -> list[TargetResult]:
        self._clients = {}
        return super().verify_all(plan, ctx)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        verified = self._down.verify_one(ref, plan, ctx)
        client = client_process(plan.target, ref, ctx)
        if client is None:  # a client the stack does not run as a process (nothing more to look at)
            return verified
        # Gone means back in a session and in its role: a client that lost its session must have
        # rejoined (a matcher: follower or leader again, not a stuck candidate). Once per client.
        if client.name not in self._clients:
            self._clients[client.name] = verify_instance(client, self.spec.settle_timeout_s, self.hosts)
        return verified | Outcome(detail={"client": client.name, "client_verified": self._clients[client.name]})
