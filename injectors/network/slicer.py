"""`network.slicer`: cut a link's data into small delayed pieces (fragmented packets)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from injectors.base import FaultSpec
from injectors.network.common import LinkSpec, ToxicInjector
from injectors.registry import register


class NetworkSlicerSpec(LinkSpec):
    average_size_bytes: int = Field(gt=0, description="Average size of the slices data is cut into.")
    size_variation_bytes: int = Field(default=0, ge=0, description="Random variation of the slice size, ±.")
    delay_us: int = Field(default=0, ge=0, description="Delay between slices, in microseconds.")


@register
class NetworkSlicerInjector(ToxicInjector[NetworkSlicerSpec]):
    """Cut a link's data into small delayed pieces (fragmented packets)."""

    kind: ClassVar[str] = "network.slicer"
    spec_type: ClassVar[type[FaultSpec]] = NetworkSlicerSpec
    toxic_type: ClassVar[str] = "slicer"

    def attributes(self) -> dict[str, JsonValue]:
        spec = self.spec
        return {
            "average_size": spec.average_size_bytes,
            "size_variation": spec.size_variation_bytes,
            "delay": spec.delay_us,
        }
