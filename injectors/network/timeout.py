"""`network.timeout`: black-hole a link's data, then close its connections after a timeout (0: never)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from injectors.base import FaultSpec
from injectors.network.common import LinkSpec, ToxicInjector
from injectors.registry import register


class NetworkTimeoutSpec(LinkSpec):
    timeout_ms: int = Field(ge=0, description="Stop all data, close the connection after this long; 0 = hold it open.")


@register
class NetworkTimeoutInjector(ToxicInjector[NetworkTimeoutSpec]):
    """Black-hole a link's data, then close its connections after a timeout (0: never)."""

    kind: ClassVar[str] = "network.timeout"
    spec_type: ClassVar[type[FaultSpec]] = NetworkTimeoutSpec
    toxic_type: ClassVar[str] = "timeout"

    def attributes(self) -> dict[str, JsonValue]:
        return {"timeout": self.spec.timeout_ms}
