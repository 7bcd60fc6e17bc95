"""`network.bandwidth`: limit a link's bandwidth."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from injectors.base import FaultSpec
from injectors.network.common import LinkSpec, ToxicInjector
from injectors.registry import register


class NetworkBandwidthSpec(LinkSpec):
    rate_kb_per_s: int = Field(
        gt=0, description="Bandwidth limit in KB/s (at least 1: Toxiproxy treats 0 as no limit)."
    )


@register
class NetworkBandwidthInjector(ToxicInjector[NetworkBandwidthSpec]):
    """Limit a link's bandwidth."""

    kind: ClassVar[str] = "network.bandwidth"
    spec_type: ClassVar[type[FaultSpec]] = NetworkBandwidthSpec
    toxic_type: ClassVar[str] = "bandwidth"

    def attributes(self) -> dict[str, JsonValue]:
        return {"rate": self.spec.rate_kb_per_s}
