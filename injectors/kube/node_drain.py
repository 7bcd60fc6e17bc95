"""`node.drain`: drain nodes (cordon, then evict their pods); rollback uncordons them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import InjectionError
from injectors.kube.common import ParallelSpec
from injectors.kube.node_cordon import Cordoner
from injectors.registry import register

if TYPE_CHECKING:
    from clients.kube import KubeApi, PodInfo

EVICT_RETRY_S = 1.0


class NodeDrainSpec(ParallelSpec):
    """Cordon nodes and evict their pods through the Eviction API (PodDisruptionBudgets apply)."""

    grace_period_s: int | None = Field(
        default=None, ge=0, description="Grace period of each eviction; default: the pod's own."
    )
    evict_timeout_s: float = Field(
        default=60.0, gt=0, description="How long to retry evictions a PodDisruptionBudget refuses (HTTP 429)."
    )


def _name(pod: PodInfo) -> str:
    return f"{pod.namespace}/{pod.name}"


@register
class NodeDrainInjector(Cordoner[NodeDrainSpec]):
    """Drain nodes (cordon, then evict their pods); rollback uncordons them."""

    kind: ClassVar[str] = "node.drain"
    spec_type: ClassVar[type[FaultSpec]] = NodeDrainSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        api = self.api(plan.target, ctx)
        api.set_unschedulable(ref.id, True)
        pods = [p for p in api.list_pods(None, field_selector=f"spec.nodeName={ref.id}") if not p.terminating]
        # Like `kubectl drain`: DaemonSet pods would come straight back and mirror pods belong to the
        # kubelet; a pod without a controller would be gone for good.
        skipped = [_name(p) for p in pods if p.mirror or p.controller is None or p.controller.startswith("DaemonSet/")]
        evicted = self.evict(api, ref.id, [p for p in pods if _name(p) not in skipped])
        return Outcome(detail={"unschedulable": True, "evicted": len(evicted), "skipped": list(skipped)})

    def evict(self, api: KubeApi, node: str, pending: list[PodInfo]) -> list[str]:
        """Evict every pod, retrying those a PodDisruptionBudget refuses until `evict_timeout_s`; the evicted."""
        from clients.kube import KubeError

        evicted: list[str] = []
        deadline = time.monotonic() + self.spec.evict_timeout_s
        while pending:
            blocked = []
            for pod in pending:
                try:
                    if api.evict_pod(pod.namespace, pod.name, self.spec.grace_period_s):
                        evicted.append(_name(pod))
                except KubeError as exc:
                    if exc.status != 429:
                        raise
                    blocked.append(pod)
            pending = blocked
            if pending and time.monotonic() > deadline:
                raise InjectionError(
                    f"node {node}: a PodDisruptionBudget kept refusing the eviction of "
                    f"{', '.join(map(_name, pending))} for {self.spec.evict_timeout_s:g}s ({len(evicted)} evicted)"
                )
            if pending:
                time.sleep(EVICT_RETRY_S)
        return evicted
