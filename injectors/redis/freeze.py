"""`redis.freeze`: freeze the Redis primary (SIGSTOP) and measure the Sentinel promotion; rollback resumes it."""

from __future__ import annotations

from typing import ClassVar, TypeVar

from injectors.base import FaultSpec
from injectors.process.pause import ProcessPauseInjector, ProcessPauseSpec
from injectors.redis.common import NodeSpec, SignalInjector
from injectors.registry import register


class RedisFreezeSpec(NodeSpec):
    """SIGSTOP the primary for the fault's duration (sockets stay open); rollback resumes it with SIGCONT."""


FrozenT = TypeVar("FrozenT", bound=NodeSpec, covariant=True)


class Freezer(SignalInjector[FrozenT]):
    """Freeze nodes with SIGSTOP through `process.pause`; rollback resumes them (or restarts one that died)."""

    def make_process(self) -> ProcessPauseInjector:
        return ProcessPauseInjector(ProcessPauseSpec(ready_timeout_s=self.spec.ready_timeout_s), self.hosts)


@register
class RedisFreezeInjector(Freezer[RedisFreezeSpec]):
    """Freeze the Redis primary (SIGSTOP) and measure the Sentinel promotion; rollback resumes it."""

    kind: ClassVar[str] = "redis.freeze"
    spec_type: ClassVar[type[FaultSpec]] = RedisFreezeSpec
