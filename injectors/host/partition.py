"""`host.partition`: drop the traffic between the target's hosts and the far side (one direction or both)."""

from __future__ import annotations

from typing import ClassVar

from clients.nft import Rule
from injectors.base import FaultSpec
from injectors.host.common import HostNetFault, HostNetSpec
from injectors.registry import register


class HostPartitionSpec(HostNetSpec):
    """Drop every matching packet: connections to the far side hang until their own timeouts fire."""


@register
class HostPartitionInjector(HostNetFault[HostPartitionSpec]):
    """Drop the traffic between the target's hosts and the far side (nftables, no proxy); rollback deletes the table."""

    kind: ClassVar[str] = "host.partition"
    spec_type: ClassVar[type[FaultSpec]] = HostPartitionSpec

    def rules(self) -> list[Rule]:
        return [Rule("counter drop")]
