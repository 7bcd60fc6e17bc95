"""`network.latency`: add latency (and jitter) to a link."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from injectors.base import FaultSpec
from injectors.network.common import LinkSpec, ToxicInjector
from injectors.registry import register


class NetworkLatencySpec(LinkSpec):
    """Delay data on the link; `jitter_ms` varies each delay by up to that much either way."""

    latency_ms: int = Field(gt=0, description="Added delay per chunk of data.")
    jitter_ms: int = Field(default=0, ge=0, description="Random variation of the delay, ±.")


@register
class NetworkLatencyInjector(ToxicInjector[NetworkLatencySpec]):
    """Add latency (and jitter) to a link."""

    kind: ClassVar[str] = "network.latency"
    spec_type: ClassVar[type[FaultSpec]] = NetworkLatencySpec
    toxic_type: ClassVar[str] = "latency"

    def attributes(self) -> dict[str, JsonValue]:
        return {"latency": self.spec.latency_ms, "jitter": self.spec.jitter_ms}
