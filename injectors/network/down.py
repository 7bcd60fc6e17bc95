"""`network.down`: take a link down (partition): refuse new connections and cut open ones."""

from __future__ import annotations

import socket
from typing import ClassVar

from pydantic import Field

from clients.health import split_hostport
from injectors.base import FaultPlan, FaultSpec, Injector, Outcome, RunContext, TargetRef
from injectors.errors import FaultStillPresentError
from injectors.network.common import client_for, resolve_links
from injectors.registry import register
from injectors.selection import Selection


class NetworkDownSpec(FaultSpec):
    """Take the link down: new connections are refused and open ones are cut (a partition of that link)."""

    connect_timeout_s: float = Field(
        default=1.0, gt=0, description="Verification: how long the restored link may take to accept a connection."
    )


@register
class NetworkDownInjector(Injector[NetworkDownSpec]):
    """Take a link down (partition): refuse new connections and cut open ones."""

    kind: ClassVar[str] = "network.down"
    spec_type: ClassVar[type[FaultSpec]] = NetworkDownSpec
    target_kinds: ClassVar[tuple[str, ...]] = ("link",)

    def find_targets(self, target: str, select: Selection | None, ctx: RunContext) -> list[TargetRef]:
        return [ref for _, ref in resolve_links(target, select, ctx)]

    def inject_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        proxy = client_for(ref).set_enabled(ref.detail["proxy"], False)
        return Outcome(detail={"proxy": proxy.name, "enabled": proxy.enabled})

    def rollback_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        # Restore what was found: a link that was already down before the fault stays down.
        wanted = bool(ref.detail.get("was_enabled", True))
        proxy = client_for(ref).set_enabled(ref.detail["proxy"], wanted)
        return Outcome(detail={"proxy": proxy.name, "enabled": proxy.enabled})

    def verify_one(self, ref: TargetRef, plan: FaultPlan, ctx: RunContext) -> Outcome:
        wanted = bool(ref.detail.get("was_enabled", True))
        proxy = client_for(ref).proxy(ref.detail["proxy"])
        if proxy.enabled != wanted:
            raise FaultStillPresentError(f"proxy {proxy.name} is {'enabled' if proxy.enabled else 'disabled'}")
        if wanted:
            host, port = split_hostport(proxy.listen)
            try:
                with socket.create_connection((host, port), timeout=self.spec.connect_timeout_s):
                    pass
            except OSError as exc:
                raise FaultStillPresentError(
                    f"link {ref.id} does not accept connections at {proxy.listen}: {exc}"
                ) from exc
        return Outcome(detail={"proxy": proxy.name, "enabled": proxy.enabled})
