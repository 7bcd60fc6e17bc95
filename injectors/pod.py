"""Kubernetes faults: `pod.delete`, `deployment.scale`, `node.cordon` and `node.drain`, through clients/kube.py.

Targets are `kubernetes` targets of the stack description (stackspec/targets.py: API access, namespace,
label selector, resource). Each plan records in its targets what undoing needs — namespace, names, uids,
the replica count and schedulable flag found before the fault — never the API credentials, so
`chaos recover` can roll back from a new process. The `kubernetes` package is imported only when one
of these faults runs. Calls to many pods or nodes run `parallelism` at a time (see injectors/base.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from injectors.base import FaultPlan, FaultSpec, Injector, RunContext, TargetRef
from injectors.errors import (
    FaultStillPresentError,
    InjectionError,
    InjectorError,
    RollbackError,
    SelectionError,
    TargetNotFoundError,
)
from injectors.registry import register
from injectors.selection import Selection, select
from stackspec.targets import KubernetesTarget

if TYPE_CHECKING:
    from clients.kube import KubeApi, PodInfo

POLL_S = 0.2  # between checks while waiting; a fresh look is shared by every target for this long
EVICT_RETRY_S = 1.0


def kubernetes_target(target: str, ctx: RunContext) -> KubernetesTarget:
    group = ctx.stack.target(target)
    if not isinstance(group, KubernetesTarget):
        raise TargetNotFoundError(f"target {target!r} is not a kubernetes target")
    return group


def _wait(what: str, check: Callable[[], str | None], timeout_s: float) -> float:
    """Seconds until `check` returns None (no problem left); RollbackError naming the last problem on timeout."""
    started = time.monotonic()
    while (problem := check()) is not None:
        if time.monotonic() - started > timeout_s:
            raise RollbackError(f"{what}: still {problem} after {timeout_s:g}s")
        time.sleep(POLL_S)
    return time.monotonic() - started


class _ParallelSpec(FaultSpec):
    parallelism: int = Field(
        default=16, ge=1, le=256, description="How many pods or nodes are acted on at once (API calls in flight)."
    )


class _KubeInjector(Injector[Any]):
    """Shared by the Kubernetes kinds: one API client per target, and a short-lived shared cache of checks."""

    target_kinds: ClassVar[tuple[str, ...]] = ("kubernetes",)
    resources: ClassVar[tuple[str, ...]]

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._apis: dict[str, KubeApi] = {}
        self._seen: dict[tuple[str, ...], tuple[float, Any]] = {}

    def parallelism(self) -> int:
        return int(getattr(self.spec, "parallelism", self.max_parallel))

    def target(self, name: str, ctx: RunContext) -> KubernetesTarget:
        group = kubernetes_target(name, ctx)
        if group.resource not in self.resources:
            wanted = " or ".join(self.resources)
            raise TargetNotFoundError(f"{self.kind} acts on {wanted}; target {name!r} has `resource: {group.resource}`")
        return group

    def api(self, name: str, ctx: RunContext) -> KubeApi:
        """The API client of target `name`, made on first use (each target has its own)."""
        with self._lock:
            if name not in self._apis:
                try:
                    from clients.kube import KubeApi
                except ImportError as exc:
                    raise InjectorError(
                        f"{self.kind} needs the `kubernetes` package: pip install kubernetes ({exc})"
                    ) from exc
                self._apis[name] = KubeApi(kubernetes_target(name, ctx).api, pool_size=self.parallelism() + 2)
            return self._apis[name]

    def seen(self, key: tuple[str, ...], fetch: Callable[[], Any]) -> Any:
        """`fetch()`, or its result from less than POLL_S ago: targets waiting in parallel share one look."""
        with self._fetch_lock:  # one fetch at a time, so parallel waiters do not all ask at once
            cached = self._seen.get(key)
            if cached is not None and time.monotonic() - cached[0] < POLL_S:
                return cached[1]
            value = fetch()
            self._seen[key] = (time.monotonic(), value)
            return value

    @staticmethod
    def no_role(selection: Selection | None) -> None:
        if selection is not None and selection.role is not None:
            raise SelectionError("kubernetes targets have no live roles; narrow the target's `label_selector` instead")


# --- pods --------------------------------------------------------------------------------------------


class PodDeleteSpec(_ParallelSpec):
    """Delete pods; their controller (Deployment, StatefulSet, ...) replaces them — rollback waits for that."""

    grace_period_s: int | None = Field(
        default=None, ge=0, description="Grace period of the delete; default: the pod's own (0: at once)."
    )
    replace_timeout_s: float = Field(
        default=120.0, gt=0, description="Rollback: how long the controller may take to have every replica ready."
    )


@register
class PodDeleteInjector(_KubeInjector):
    kind: ClassVar[str] = "pod.delete"
    spec_type: ClassVar[type[FaultSpec]] = PodDeleteSpec
    summary: ClassVar[str] = "Delete pods (grace period, count or percent); rollback waits until they are replaced."
    resources: ClassVar[tuple[str, ...]] = ("pods", "deployment")

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        group, api = self.target(target, ctx), self.api(target, ctx)
        self.no_role(select)
        selector = group.label_selector
        if group.resource == "deployment":
            assert group.deployment is not None
            selector = api.read_deployment(group.namespace, group.deployment).selector
        pods = [p for p in api.list_pods(group.namespace, selector) if not p.terminating]
        owned = [p for p in pods if p.controller is not None]
        if not owned:
            bare = f" ({len(pods)} match but no controller owns them)" if pods else ""
            raise SelectionError(f"no pod of {target!r} matches {selector!r} in {group.namespace}{bare}")
        chosen = _select(owned, select, ctx)
        ready = sum(1 for p in pods if p.ready)
        return [
            TargetRef(
                id=p.name,
                detail={
                    "namespace": p.namespace,
                    "uid": p.uid,
                    "node": p.node,
                    "controller": p.controller,
                    "selector": selector,
                    "deployment": group.deployment,
                    "ready_before": ready,
                },
            )
            for p in chosen
        ]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        namespace = ref.detail["namespace"]
        # The uid precondition deletes exactly the pod resolved, never a successor that took its name.
        deleted = self.api(plan.target, ctx).delete_pod(namespace, ref.id, ref.detail["uid"], self.spec.grace_period_s)
        if deleted is None:
            raise InjectionError(f"pod {namespace}/{ref.id} was already gone; nothing deleted")
        return {"namespace": namespace, "grace_period_s": self.spec.grace_period_s, "terminating": deleted.terminating}

    def capacity_problem(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> str | None:
        """What keeps the pods' capacity from being back (None: every desired replica is ready again)."""
        namespace, selector, deployment = ref.detail["namespace"], ref.detail["selector"], ref.detail["deployment"]
        api = self.api(plan.target, ctx)
        pods: list[PodInfo] = self.seen(("pods", namespace, selector), lambda: api.list_pods(namespace, selector))
        ready = sum(1 for p in pods if p.ready and not p.terminating)
        if deployment is not None:
            desired = self.seen(
                ("deployment", namespace, deployment), lambda: api.read_deployment(namespace, deployment)
            ).replicas
            what = f"deployment {deployment}"
        else:
            desired, what = int(ref.detail["ready_before"]), f"pods matching {selector!r}"
        return None if ready >= desired else f"{ready}/{desired} ready ({what})"

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        # Nothing to undo by hand: the controller replaces the pod. Wait (bounded) until it has.
        waited = _wait(
            f"pod {ref.id} not replaced",
            lambda: self.capacity_problem(ref, plan, ctx),
            self.spec.replace_timeout_s,
        )
        return {"replaced_after_s": round(waited, 3)}

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        problem = self.capacity_problem(ref, plan, ctx)
        if problem is not None:
            raise FaultStillPresentError(f"pod {ref.id} is not replaced yet: {problem}")
        return {"replaced": True}


def _select(pods: list[PodInfo], selection: Selection | None, ctx: RunContext) -> list[PodInfo]:
    return select(pods, selection, ctx.rng, name_of=lambda p: p.name, role_of=lambda p: None)


# --- deployments -------------------------------------------------------------------------------------


class DeploymentScaleSpec(FaultSpec):
    """Scale a Deployment to `replicas`; rollback restores the replica count found before the fault."""

    replicas: int = Field(ge=0, description="Replica count during the fault (0 takes the service away).")
    ready_timeout_s: float = Field(
        default=120.0, gt=0, description="Rollback: how long the restored replicas may take to be ready."
    )


@register
class DeploymentScaleInjector(_KubeInjector):
    kind: ClassVar[str] = "deployment.scale"
    spec_type: ClassVar[type[FaultSpec]] = DeploymentScaleSpec
    summary: ClassVar[str] = "Scale a Deployment to N replicas; rollback restores the previous count and waits."
    resources: ClassVar[tuple[str, ...]] = ("deployment",)
    selectable: ClassVar[bool] = False

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        if select is not None:
            raise SelectionError(f"{self.kind} acts on the target's one Deployment; remove `select`")
        group = self.target(target, ctx)
        assert group.deployment is not None
        previous = self.api(target, ctx).read_scale(group.namespace, group.deployment)
        if previous == self.spec.replicas:
            raise SelectionError(
                f"deployment {group.namespace}/{group.deployment} already has {previous} replicas; "
                "choose another `replicas`"
            )
        return [TargetRef(id=group.deployment, detail={"namespace": group.namespace, "previous_replicas": previous})]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        replicas = self.api(plan.target, ctx).patch_scale(ref.detail["namespace"], ref.id, self.spec.replicas)
        return {"replicas": replicas, "previous_replicas": ref.detail["previous_replicas"]}

    def problem(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> str | None:
        dep = self.api(plan.target, ctx).read_deployment(ref.detail["namespace"], ref.id)
        previous = int(ref.detail["previous_replicas"])
        if dep.replicas != previous:
            return f"{dep.replicas} replicas wanted instead of {previous}"
        if dep.observed_generation < dep.generation:
            return f"generation {dep.generation} not yet observed by the controller"
        if dep.ready < previous or dep.status_replicas != previous:
            return f"{dep.ready}/{previous} ready ({dep.status_replicas} running)"
        return None

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        namespace, previous = ref.detail["namespace"], int(ref.detail["previous_replicas"])
        api = self.api(plan.target, ctx)
        if api.read_scale(namespace, ref.id) != previous:
            api.patch_scale(namespace, ref.id, previous)
        waited = _wait(
            f"deployment {namespace}/{ref.id} not restored",
            lambda: self.problem(ref, plan, ctx),
            self.spec.ready_timeout_s,
        )
        return {"replicas": previous, "ready_after_s": round(waited, 3)}

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        problem = self.problem(ref, plan, ctx)
        if problem is not None:
            raise FaultStillPresentError(f"deployment {ref.detail['namespace']}/{ref.id}: {problem}")
        return {"replicas": ref.detail["previous_replicas"]}


# --- nodes -------------------------------------------------------------------------------------------


class NodeCordonSpec(_ParallelSpec):
    """Mark nodes unschedulable (`kubectl cordon`); rollback makes them schedulable again."""


@register
class NodeCordonInjector(_KubeInjector):
    kind: ClassVar[str] = "node.cordon"
    spec_type: ClassVar[type[FaultSpec]] = NodeCordonSpec
    summary: ClassVar[str] = "Cordon nodes (unschedulable: no new pods land there); rollback uncordons them."
    resources: ClassVar[tuple[str, ...]] = ("nodes",)

    def resolve(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        group = self.target(target, ctx)
        self.no_role(select)
        nodes = self.api(target, ctx).list_nodes(group.label_selector)
        cordoned = [n.name for n in nodes if n.unschedulable]
        if select is not None and select.name in cordoned:
            raise SelectionError(f"node {select.name!r} is already cordoned")
        schedulable = [n for n in nodes if not n.unschedulable]
        if not schedulable:
            raise SelectionError(f"no schedulable node matches {group.label_selector or '(all nodes)'!r}")
        chosen = select_nodes(schedulable, select, ctx)
        return [TargetRef(id=n.name, detail={"uid": n.uid, "was_unschedulable": False}) for n in chosen]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        self.api(plan.target, ctx).set_unschedulable(ref.id, True)
        return {"unschedulable": True}

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        if ref.detail.get("was_unschedulable"):
            return {"uncordoned": False}  # it was cordoned before the fault: leave it so
        self.api(plan.target, ctx).set_unschedulable(ref.id, False)  # idempotent: uncordoning twice is harmless
        return {"uncordoned": True}

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        node = self.api(plan.target, ctx).read_node(ref.id)
        if node.unschedulable != bool(ref.detail.get("was_unschedulable")):
            raise FaultStillPresentError(f"node {ref.id} is still cordoned (spec.unschedulable)")
        return {"unschedulable": node.unschedulable}


def select_nodes(nodes: list[Any], selection: Selection | None, ctx: RunContext) -> list[Any]:
    return select(nodes, selection, ctx.rng, name_of=lambda n: n.name, role_of=lambda n: None)


class NodeDrainSpec(_ParallelSpec):
    """Cordon nodes and evict their pods through the Eviction API (PodDisruptionBudgets apply)."""

    grace_period_s: int | None = Field(
        default=None, ge=0, description="Grace period of each eviction; default: the pod's own."
    )
    evict_timeout_s: float = Field(
        default=60.0, gt=0, description="How long to retry evictions a PodDisruptionBudget refuses (HTTP 429)."
    )


@register
class NodeDrainInjector(NodeCordonInjector):
    kind: ClassVar[str] = "node.drain"
    spec_type: ClassVar[type[FaultSpec]] = NodeDrainSpec
    summary: ClassVar[str] = "Drain nodes (cordon, then evict their pods); rollback uncordons them."

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> dict[str, Any]:
        from clients.kube import KubeError

        api = self.api(plan.target, ctx)
        api.set_unschedulable(ref.id, True)
        pods = [p for p in api.list_pods(None, field_selector=f"spec.nodeName={ref.id}") if not p.terminating]
        # Like `kubectl drain`: DaemonSet pods would come straight back and mirror pods belong to the
        # kubelet; a pod without a controller would be gone for good.
        skipped = [
            f"{p.namespace}/{p.name}"
            for p in pods
            if p.mirror or p.controller is None or p.controller.startswith("DaemonSet/")
        ]
        pending = [p for p in pods if f"{p.namespace}/{p.name}" not in skipped]
        evicted: list[str] = []
        deadline = time.monotonic() + self.spec.evict_timeout_s
        while pending:
            blocked = []
            for pod in pending:
                try:
                    if api.evict_pod(pod.namespace, pod.name, self.spec.grace_period_s):
                        evicted.append(f"{pod.namespace}/{pod.name}")
                except KubeError as exc:
                    if exc.status != 429:
                        raise
                    blocked.append(pod)
            pending = blocked
            if pending and time.monotonic() > deadline:
                names = ", ".join(f"{p.namespace}/{p.name}" for p in pending)
                raise InjectionError(
                    f"node {ref.id}: a PodDisruptionBudget kept refusing the eviction of {names} "
                    f"for {self.spec.evict_timeout_s:g}s ({len(evicted)} evicted)"
                )
            if pending:
                time.sleep(EVICT_RETRY_S)
        return {"unschedulable": True, "evicted": len(evicted), "skipped": skipped}
