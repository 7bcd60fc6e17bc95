"""`host.bandwidth`: cap the traffic between the target's hosts and the far side at a rate, per direction."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from clients.nft import Rule
from injectors.base import FaultSpec
from injectors.host.common import HostNetFault, HostNetSpec
from injectors.registry import register


class HostBandwidthSpec(HostNetSpec):
    """Drop the matching packets above `rate_kbytes_per_s` (an nftables `limit`, shared by every matching
    connection in that direction): a policer, so TCP backs off to the rate through retransmits."""

    rate_kbytes_per_s: int = Field(
        ge=1, le=10_000_000, description="Rate allowed through in each direction, in kilobytes per second."
    )


@register
class HostBandwidthInjector(HostNetFault[HostBandwidthSpec]):
    """Cap the traffic between the target's hosts and the far side at a rate; rollback deletes the table."""

    kind: ClassVar[str] = "host.bandwidth"
    spec_type: ClassVar[type[FaultSpec]] = HostBandwidthSpec

    def rules(self) -> list[Rule]:
        return [Rule(f"limit rate over {self.spec.rate_kbytes_per_s} kbytes/second counter drop")]
