"""`network.reset_peer`: reset a link's connections (TCP RST)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from injectors.base import FaultSpec
from injectors.network.common import LinkSpec, ToxicInjector
from injectors.registry import register


class NetworkResetPeerSpec(LinkSpec):
    timeout_ms: int = Field(default=0, ge=0, description="Reset connections after this long (0: at once).")


@register
class NetworkResetPeerInjector(ToxicInjector[NetworkResetPeerSpec]):
    """Reset a link's connections (TCP RST)."""

    kind: ClassVar[str] = "network.reset_peer"
    spec_type: ClassVar[type[FaultSpec]] = NetworkResetPeerSpec
    toxic_type: ClassVar[str] = "reset_peer"

    def attributes(self) -> dict[str, JsonValue]:
        return {"timeout": self.spec.timeout_ms}
