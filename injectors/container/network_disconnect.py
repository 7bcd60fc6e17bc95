"""`container.network_disconnect`: disconnect containers from their engine networks; rollback reconnects them."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from clients.container_engine import ContainerNotFoundError
from injectors.base import FaultPlan, FaultSpec, Outcome, RunContext, TargetRef
from injectors.container.common import (
    READY,
    ContainerFault,
    client_of,
    ensure_running,
    resolve_containers,
    verify_ready,
)
from injectors.errors import FaultStillPresentError, InjectionError, RollbackError
from injectors.registry import register
from injectors.selection import Selection

# Without an engine network there is nothing to disconnect: the container shares another namespace.
_NO_OWN_NETWORK = ("host", "none")


class ContainerNetworkDisconnectSpec(FaultSpec):
    """Disconnect the container from its engine network(s); rollback reconnects it.

    Containers on the host network (`network_mode: host`, the reference stack's) have no network of
    their own to disconnect: the fault is refused before the run starts.
    """

    network: str | None = Field(default=None, description="Network to disconnect from; default: every one.")
    ready_timeout_s: float = READY


@register
class ContainerNetworkDisconnectInjector(ContainerFault[ContainerNetworkDisconnectSpec]):
    """Disconnect containers from their engine networks; rollback reconnects them."""

    kind: ClassVar[str] = "container.network_disconnect"
    spec_type: ClassVar[type[FaultSpec]] = ContainerNetworkDisconnectSpec

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        refs = resolve_containers(target, select, ctx)
        for ref in refs:
            mode, networks = str(ref.detail["network_mode"]), list(ref.detail["networks"])
            if mode in _NO_OWN_NETWORK or mode.startswith("container:"):
                raise InjectionError(
                    f"{ref.id} uses network_mode {mode!r}: it has no network of its own to disconnect "
                    "(use network.* faults on its links instead, or run it on an engine network)"
                )
            wanted = self.spec.network
            if wanted is not None and wanted not in networks:
                raise InjectionError(f"{ref.id} is not on network {wanted!r} (it is on: {', '.join(networks)})")
            if not networks:
                raise InjectionError(f"{ref.id} is on no network; nothing to disconnect")
            ref.detail["networks"] = [wanted] if wanted is not None else networks
        return refs

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        cid = str(ref.detail["container_id"])
        with client_of(ref) as client:
            for network in ref.detail["networks"]:
                client.disconnect(cid, network)
            left = client.inspect(cid).networks
        still = sorted(set(left) & set(ref.detail["networks"]))
        if still:
            raise InjectionError(f"{ref.id} is still on {', '.join(still)} after disconnect")
        return Outcome(detail={"container_id": cid, "disconnected": list(ref.detail["networks"])})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        cid = str(ref.detail["container_id"])
        with client_of(ref) as client:
            try:
                current = client.inspect(cid).networks
            except ContainerNotFoundError as exc:
                raise RollbackError(f"{ref.id}: container {cid[:12]} no longer exists") from exc
            missing = [n for n in ref.detail["networks"] if n not in current]
            for network in missing:
                client.connect(cid, network)
        return ensure_running(ref, self.spec.ready_timeout_s) | Outcome(detail={"reconnected": missing})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        detail = verify_ready(ref)
        with client_of(ref) as client:
            current = client.inspect(str(ref.detail["container_id"])).networks
        missing = [n for n in ref.detail["networks"] if n not in current]
        if missing:
            raise FaultStillPresentError(f"{ref.id} is still disconnected from {', '.join(missing)}")
        return Outcome(detail={**detail, "networks": list(current)})
