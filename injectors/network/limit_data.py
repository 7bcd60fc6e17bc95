"""`network.limit_data`: close a link's connections after a number of bytes."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from injectors.base import FaultSpec
from injectors.network.common import LinkSpec, ToxicInjector
from injectors.registry import register


class NetworkLimitDataSpec(LinkSpec):
    limit_bytes: int = Field(gt=0, description="Close each connection once this many bytes went through.")


@register
class NetworkLimitDataInjector(ToxicInjector[NetworkLimitDataSpec]):
    """Close a link's connections after a number of bytes."""

    kind: ClassVar[str] = "network.limit_data"
    spec_type: ClassVar[type[FaultSpec]] = NetworkLimitDataSpec
    toxic_type: ClassVar[str] = "limit_data"

    def attributes(self) -> dict[str, JsonValue]:
        return {"bytes": self.spec.limit_bytes}
