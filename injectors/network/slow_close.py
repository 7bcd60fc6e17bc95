"""`network.slow_close`: delay the closing of a link's connections."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from injectors.base import FaultSpec
from injectors.network.common import LinkSpec, ToxicInjector
from injectors.registry import register


class NetworkSlowCloseSpec(LinkSpec):
    delay_ms: int = Field(gt=0, description="Delay before a closed connection is closed on the other side.")


@register
class NetworkSlowCloseInjector(ToxicInjector[NetworkSlowCloseSpec]):
    """Delay the closing of a link's connections."""

    kind: ClassVar[str] = "network.slow_close"
    spec_type: ClassVar[type[FaultSpec]] = NetworkSlowCloseSpec
    toxic_type: ClassVar[str] = "slow_close"

    def attributes(self) -> dict[str, JsonValue]:
        return {"delay": self.spec.delay_ms}
