"""`redis.kill_primary`: kill the Redis primary (SIGKILL) and measure the Sentinel promotion; rollback restarts it."""

from __future__ import annotations

from typing import ClassVar

from injectors.base import FaultSpec
from injectors.process.kill import ProcessKillInjector, ProcessKillSpec
from injectors.redis.common import NodeSpec, SignalInjector
from injectors.registry import register


class RedisKillPrimarySpec(NodeSpec):
    """SIGKILL the primary; rollback restarts it from its command line and Sentinel makes it a replica."""


@register
class RedisKillPrimaryInjector(SignalInjector[RedisKillPrimarySpec]):
    """Kill the Redis primary (SIGKILL) and measure the Sentinel promotion; rollback restarts it."""

    kind: ClassVar[str] = "redis.kill_primary"
    spec_type: ClassVar[type[FaultSpec]] = RedisKillPrimarySpec

    def make_process(self) -> ProcessKillInjector:
        return ProcessKillInjector(ProcessKillSpec(ready_timeout_s=self.spec.ready_timeout_s), self.hosts)
