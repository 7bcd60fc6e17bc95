"""What the server-killing ZooKeeper kinds share: the ensemble, choosing servers by role, verifying it whole.

Roles come from the `srvr` four-letter word over a plain socket with a timeout (`Mode: leader`,
`follower`; a server without a quorum answers "not currently serving requests" instead) — never from a
ZooKeeper client library, which blocks while its session is suspended. `ruok` is no health check: it
answers `imok` without a quorum. Killed servers go through `process.kill` (PID identity checked with
the start time) and are restarted from their recorded command line, on the same data directory.
Verification checks the whole ensemble: every server serves as leader or follower, exactly one leader,
and the same leader for `STABLE_WINDOW_S` (`clients.health.wait_stable`): an election still settling can
show one leader for a moment and another the next.

A server may run on another host (`host:`): it is then killed and restarted there over SSH, one connection
per host for a whole step, and `srvr` goes over the network to its address (its health check, else
`ports.client` on the host's address).
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import TypeVar

from pydantic import Field, JsonValue

from clients.errors import NotSettledError
from clients.procs import ProcessHosts, is_running
from clients.zk import Ensemble, address_of
from injectors.base import FaultPlan, FaultSpec, Injector, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError, SelectionError, TargetNotFoundError
from injectors.process.common import check_running, found_by_rules, process_target, refuse_loopback, where
from injectors.process.kill import ProcessKillInjector, ProcessKillSpec
from injectors.selection import Selection, select


def ensemble_of(target: str, ctx: RunContext) -> Ensemble:
    """The ensemble a fault acts on: the servers of `target`."""
    instances = process_target(target, ctx).instances
    return Ensemble(nodes={i.name: address_of(i) for i in instances}, instances={i.name: i for i in instances})


def ensemble_ref(
    ensemble: Ensemble, name: str, leader: str | None, hosts: ProcessHosts, unmatched: dict[str, str] | None = None
) -> TargetRef:
    """The target ref of one server, refused when its `match` rules found no process or it is not running."""
    if unmatched and name in unmatched:
        raise TargetNotFoundError(unmatched[name])
    instance = ensemble.instances[name]
    if not is_running(instance, hosts):
        raise InjectionError(f"{name}'s recorded process (pid {instance.pid}) is not running")
    detail = {
        "pid": instance.pid,
        "start_time": instance.start_time,
        "address": ensemble.nodes[name],
        **where(instance),
    }
    return TargetRef(id=name, detail={**detail, "leader": leader})


def healthy(ensemble: Ensemble, timeout_s: float, stable: bool = True) -> dict[str, JsonValue]:
    """`Ensemble.wait_healthy` for a rollback's verification: an ensemble never healthy is a fault still present."""
    try:
        return ensemble.wait_healthy(timeout_s, stable=stable)
    except NotSettledError as exc:
        raise FaultStillPresentError(str(exc)) from exc


def no_select(kind: str, select: Selection | None) -> None:
    if select is not None:
        raise SelectionError(f"{kind} chooses its servers by their live role; remove `select`")


def select_names(names: list[str], selection: Selection, ctx: RunContext, modes: dict[str, str | None]) -> list[str]:
    """`injectors.selection.select` over server names, with the `srvr` Mode as the role."""
    return select(names, selection, ctx.rng, name_of=lambda name: name, role_of=modes.get)


class EnsembleSpec(FaultSpec):
    """What every server-killing ZooKeeper fault needs to restart servers and judge the ensemble healthy."""

    ready_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a restarted server may take to serve (answer `srvr` with a Mode)."
    )
    settle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Verification: how long the ensemble may take to have every server serving and one leader.",
    )


EnsembleSpecT = TypeVar("EnsembleSpecT", bound=EnsembleSpec, covariant=True)


class KillInjector(Injector[EnsembleSpecT]):
    """Kill chosen servers through `process.kill`; rollback restarts them, verification checks the ensemble."""

    def __init__(self, spec: EnsembleSpecT) -> None:
        super().__init__(spec)
        self.hosts = ProcessHosts()  # SSH connections to the servers' hosts, shared by a step, closed at its end
        self._process = ProcessKillInjector(ProcessKillSpec(ready_timeout_s=spec.ready_timeout_s), self.hosts)

    def session(self) -> AbstractContextManager[object]:
        return self.hosts

    def process(self) -> ProcessKillInjector:
        """`process.kill`, built once for this fault, on this fault's hosts."""
        return self._process

    @abstractmethod
    def choose(self, ensemble: Ensemble, select: Selection | None, ctx: RunContext) -> list[str]:
        """The names of the servers to kill."""

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        _, unmatched = found_by_rules(target, ctx, self.hosts)
        ensemble = ensemble_of(target, ctx)
        for name, instance in ensemble.instances.items():
            refuse_loopback(target, instance, ensemble.nodes[name])
        if (reason := ensemble.problem()) is not None:
            raise InjectionError(f"{self.kind} needs a healthy ensemble to start from: {reason}")
        leader = ensemble.leader()
        chosen = self.choose(ensemble, select, ctx)
        return [ensemble_ref(ensemble, name, leader, self.hosts, unmatched) for name in chosen]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return self.process().inject_one(ref, plan, ctx)

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        return self.process().rollback_one(ref, plan, ctx)

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        detail = check_running(plan, ref, ctx, self.hosts)  # this server's health is judged with the ensemble's
        return Outcome(detail={**detail, **healthy(ensemble_of(plan.target, ctx), self.spec.settle_timeout_s)})
