"""`deployment.scale`: scale a Deployment to N replicas; rollback restores the previous count and waits."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, SelectionError, absent_is_not_found
from injectors.kube.common import KubeInjector, wait_until
from injectors.registry import register
from injectors.selection import Selection


class DeploymentScaleSpec(FaultSpec):
    """Scale a Deployment to `replicas`; rollback restores the replica count found before the fault."""

    replicas: int = Field(ge=0, description="Replica count during the fault (0 takes the service away).")
    ready_timeout_s: float = Field(
        default=120.0, gt=0, description="Rollback: how long the restored replicas may take to be ready."
    )


@register
class DeploymentScaleInjector(KubeInjector[DeploymentScaleSpec]):
    """Scale a Deployment to N replicas; rollback restores the previous count and waits."""

    kind: ClassVar[str] = "deployment.scale"
    spec_type: ClassVar[type[FaultSpec]] = DeploymentScaleSpec
    resources: ClassVar[tuple[str, ...]] = ("deployment",)
    selectable: ClassVar[bool] = False

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        if select is not None:
            raise SelectionError(f"{self.kind} acts on the target's one Deployment; remove `select`")
        group = self.target(target, ctx)
        assert group.deployment is not None
        with absent_is_not_found(f"deployment {group.namespace}/{group.deployment} of target {target!r}"):
            previous = self.api(target, ctx).read_scale(group.namespace, group.deployment)
        if previous == self.spec.replicas:
            raise SelectionError(
                f"deployment {group.namespace}/{group.deployment} already has {previous} replicas; "
                "choose another `replicas`"
            )
        return [TargetRef(id=group.deployment, detail={"namespace": group.namespace, "previous_replicas": previous})]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        replicas = self.api(plan.target, ctx).patch_scale(ref.detail["namespace"], ref.id, self.spec.replicas)
        return Outcome(detail={"replicas": replicas, "previous_replicas": ref.detail["previous_replicas"]})

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

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        namespace, previous = ref.detail["namespace"], int(ref.detail["previous_replicas"])
        api = self.api(plan.target, ctx)
        if api.read_scale(namespace, ref.id) != previous:
            api.patch_scale(namespace, ref.id, previous)
        waited = wait_until(
            f"deployment {namespace}/{ref.id}",
            "restored",
            lambda: self.problem(ref, plan, ctx),
            self.spec.ready_timeout_s,
        )
        return Outcome(detail={"replicas": previous, "ready_after_s": round(waited, 3)})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        problem = self.problem(ref, plan, ctx)
        if problem is not None:
            raise FaultStillPresentError(f"deployment {ref.detail['namespace']}/{ref.id}: {problem}")
        return Outcome(detail={"replicas": ref.detail["previous_replicas"]})
