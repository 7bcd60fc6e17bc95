"""`node.cordon`: cordon nodes (unschedulable: no new pods land there); rollback uncordons them."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, TypeVar

from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError, SelectionError
from injectors.kube.common import KubeInjector, ParallelSpec, no_role
from injectors.registry import register
from injectors.selection import Selection, select

if TYPE_CHECKING:
    from clients.kube import NodeInfo

NodeSpecT = TypeVar("NodeSpecT", bound=ParallelSpec, covariant=True)


class Cordoner(KubeInjector[NodeSpecT]):
    """Shared by `node.cordon` and `node.drain`: pick schedulable nodes, uncordon them, read them back."""

    resources: ClassVar[tuple[str, ...]] = ("nodes",)

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        group = self.target(target, ctx)
        no_role(select)
        nodes = self.api(target, ctx).list_nodes(group.label_selector)
        cordoned = [n.name for n in nodes if n.unschedulable]
        if select is not None and select.name in cordoned:
            raise SelectionError(f"node {select.name!r} is already cordoned")
        schedulable = [n for n in nodes if not n.unschedulable]
        if not schedulable:
            raise SelectionError(f"no schedulable node matches {group.label_selector or '(all nodes)'!r}")
        chosen = select_nodes(schedulable, select, ctx)
        return [TargetRef(id=n.name, detail={"uid": n.uid, "was_unschedulable": False}) for n in chosen]

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        if ref.detail.get("was_unschedulable"):
            return Outcome(detail={"uncordoned": False})  # it was cordoned before the fault: leave it so
        self.api(plan.target, ctx).set_unschedulable(ref.id, False)  # idempotent: uncordoning twice is harmless
        return Outcome(detail={"uncordoned": True})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        node = self.api(plan.target, ctx).read_node(ref.id)
        if node.unschedulable != bool(ref.detail.get("was_unschedulable")):
            raise FaultStillPresentError(f"node {ref.id} is still cordoned (spec.unschedulable)")
        return Outcome(detail={"unschedulable": node.unschedulable})


def select_nodes(nodes: list[NodeInfo], selection: Selection | None, ctx: RunContext) -> list[NodeInfo]:
    return select(nodes, selection, ctx.rng, name_of=lambda n: n.name, role_of=lambda n: None)


class NodeCordonSpec(ParallelSpec):
    """Mark nodes unschedulable (`kubectl cordon`); rollback makes them schedulable again."""


@register
class NodeCordonInjector(Cordoner[NodeCordonSpec]):
    """Cordon nodes (unschedulable: no new pods land there); rollback uncordons them."""

    kind: ClassVar[str] = "node.cordon"
    spec_type: ClassVar[type[FaultSpec]] = NodeCordonSpec

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        self.api(plan.target, ctx).set_unschedulable(ref.id, True)
        return Outcome(detail={"unschedulable": True})
