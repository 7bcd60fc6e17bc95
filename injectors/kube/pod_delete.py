"""`pod.delete`: delete pods (grace period, count or percent); rollback waits until they are replaced."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError, SelectionError, absent_is_not_found
from injectors.kube.common import KubeInjector, ParallelSpec, no_role, wait_until
from injectors.registry import register
from injectors.selection import Selection, select

if TYPE_CHECKING:
    from clients.kube import DeploymentInfo, PodInfo


class PodDeleteSpec(ParallelSpec):
    """Delete pods; their controller (Deployment, StatefulSet, ...) replaces them — rollback waits for that."""

    grace_period_s: int | None = Field(
        default=None, ge=0, description="Grace period of the delete; default: the pod's own (0: at once)."
    )
    replace_timeout_s: float = Field(
        default=120.0, gt=0, description="Rollback: how long the controller may take to have every replica ready."
    )


@register
class PodDeleteInjector(KubeInjector[PodDeleteSpec]):
    """Delete pods (grace period, count or percent); rollback waits until they are replaced."""

    kind: ClassVar[str] = "pod.delete"
    spec_type: ClassVar[type[FaultSpec]] = PodDeleteSpec
    resources: ClassVar[tuple[str, ...]] = ("pods", "deployment")

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        group, api = self.target(target, ctx), self.api(target, ctx)
        no_role(select)
        selector = group.label_selector
        if group.resource == "deployment":
            assert group.deployment is not None
            with absent_is_not_found(f"deployment {group.namespace}/{group.deployment} of target {target!r}"):
                selector = api.read_deployment(group.namespace, group.deployment).selector
        pods = [p for p in api.list_pods(group.namespace, selector) if not p.terminating]
        owned = [p for p in pods if p.controller is not None]
        if not owned:
            bare = f" ({len(pods)} match but no controller owns them)" if pods else ""
            raise SelectionError(f"no pod of {target!r} matches {selector!r} in {group.namespace}{bare}")
        chosen = select_pods(owned, select, ctx)
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

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        namespace = ref.detail["namespace"]
        # The uid precondition deletes exactly the pod resolved, never a successor that took its name.
        deleted = self.api(plan.target, ctx).delete_pod(namespace, ref.id, ref.detail["uid"], self.spec.grace_period_s)
        if deleted is None:
            raise InjectionError(f"pod {namespace}/{ref.id} was already gone; nothing deleted")
        grace = self.spec.grace_period_s
        return Outcome(detail={"namespace": namespace, "grace_period_s": grace, "terminating": deleted.terminating})

    def capacity_problem(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> str | None:
        """What keeps the pods' capacity from being back (None: every desired replica is ready again)."""
        namespace, selector, deployment = ref.detail["namespace"], ref.detail["selector"], ref.detail["deployment"]
        api = self.api(plan.target, ctx)
        pods: list[PodInfo] = self.seen(("pods", namespace, selector), lambda: api.list_pods(namespace, selector))
        ready = sum(1 for p in pods if p.ready and not p.terminating)
        if deployment is not None:
            read: DeploymentInfo = self.seen(
                ("deployment", namespace, deployment), lambda: api.read_deployment(namespace, deployment)
            )
            desired, what = read.replicas, f"deployment {deployment}"
        else:
            desired, what = int(ref.detail["ready_before"]), f"pods matching {selector!r}"
        return None if ready >= desired else f"{ready}/{desired} ready ({what})"

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        # Nothing to undo by hand: the controller replaces the pod. Wait (bounded) until it has.
        waited = wait_until(
            f"pod {ref.id}",
            "replaced",
            lambda: self.capacity_problem(ref, plan, ctx),
            self.spec.replace_timeout_s,
        )
        return Outcome(detail={"replaced_after_s": round(waited, 3)})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        problem = self.capacity_problem(ref, plan, ctx)
        if problem is not None:
            raise FaultStillPresentError(f"pod {ref.id} is not replaced yet: {problem}")
        return Outcome(detail={"replaced": True})


def select_pods(pods: list[PodInfo], selection: Selection | None, ctx: RunContext) -> list[PodInfo]:
    return select(pods, selection, ctx.rng, name_of=lambda p: p.name, role_of=lambda p: None)
