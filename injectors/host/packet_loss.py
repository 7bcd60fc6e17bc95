"""`host.packet_loss`: drop a share of the packets between the target's hosts and the far side, at random."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from clients.nft import Rule
from injectors.base import FaultSpec
from injectors.host.common import HostNetFault, HostNetSpec
from injectors.registry import register


class HostPacketLossSpec(HostNetSpec):
    """Drop each matching packet with probability `percent` (nftables `numgen random`): TCP retransmits,
    so connections slow down; at high rates they stall."""

    percent: int = Field(ge=1, le=100, description="Share of the matching packets dropped, in percent.")


@register
class HostPacketLossInjector(HostNetFault[HostPacketLossSpec]):
    """Drop a share of the packets between the target's hosts and the far side; rollback deletes the table."""

    kind: ClassVar[str] = "host.packet_loss"
    spec_type: ClassVar[type[FaultSpec]] = HostPacketLossSpec

    def rules(self) -> list[Rule]:
        if self.spec.percent == 100:  # `numgen random mod 100` ranges over 0-99: "< 100" is not a value it takes
            return [Rule("counter drop")]
        return [Rule(f"numgen random mod 100 < {self.spec.percent} counter drop")]
