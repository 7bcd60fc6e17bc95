"""`host.reject`: refuse the traffic between the target's hosts and the far side at once (TCP reset, ICMP)."""

from __future__ import annotations

from typing import ClassVar

from clients.nft import Rule
from injectors.base import FaultSpec
from injectors.host.common import HostNetFault, HostNetSpec
from injectors.registry import register


class HostRejectSpec(HostNetSpec):
    """Answer every matching TCP packet with a reset and every other one with ICMP "administratively
    prohibited": clients fail at once instead of hanging, as when a peer's host is up but its service is not."""


@register
class HostRejectInjector(HostNetFault[HostRejectSpec]):
    """Refuse the traffic between the target's hosts and the far side (TCP reset); rollback deletes the table."""

    kind: ClassVar[str] = "host.reject"
    spec_type: ClassVar[type[FaultSpec]] = HostRejectSpec

    def rules(self) -> list[Rule]:
        return [
            Rule("counter reject with tcp reset", l4="tcp"),
            Rule("counter reject with icmpx type admin-prohibited"),
        ]
