"""What the Kubernetes kinds share: their target, one API client per target, waits, a shared cache of looks.

Targets are `kubernetes` targets of the stack description (stackspec/targets.py: API access, namespace,
label selector, resource). Each plan records in its targets what undoing needs — namespace, names, uids,
the replica count and schedulable flag found before the fault — never the API credentials, so
`chaos recover` can roll back from a new process. The `kubernetes` package is imported only when one
of these faults runs (clients/kube.py). Calls to many pods or nodes run `parallelism` at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from pydantic import Field

from clients.poll import PollTimeout, poll_until
from injectors.base import FaultSpec, Injector, RunContext, SpecT
from injectors.errors import InjectorError, RollbackError, SelectionError, TargetNotFoundError
from injectors.selection import Selection
from stackspec.targets import KubernetesTarget

if TYPE_CHECKING:
    from clients.kube import KubeApi

POLL_S = 0.2  # between checks while waiting; a fresh look is shared by every target for this long
T = TypeVar("T")


def kubernetes_target(target: str, ctx: RunContext) -> KubernetesTarget:
    group = ctx.stack.target(target)
    if not isinstance(group, KubernetesTarget):
        raise TargetNotFoundError(f"target {target!r} is not a kubernetes target")
    return group


def wait_until(subject: str, state: str, check: Callable[[], str | None], timeout_s: float) -> float:
    """Seconds until `check` returns None (no problem left); RollbackError naming the last problem on timeout.

    The error reads "<subject>: not <state> after <timeout>s: <last problem>" ("pod web-1: not replaced ...").
    """
    try:
        return poll_until(lambda: (check(), None), timeout_s, POLL_S, state)[1]
    except PollTimeout as exc:
        raise RollbackError(f"{subject}: {exc}") from exc


def no_role(selection: Selection | None) -> None:
    if selection is not None and selection.role is not None:
        raise SelectionError("kubernetes targets have no live roles; narrow the target's `label_selector` instead")


class ParallelSpec(FaultSpec):
    parallelism: int = Field(
        default=16, ge=1, le=256, description="How many pods or nodes are acted on at once (API calls in flight)."
    )


class KubeInjector(Injector[SpecT]):
    """Shared by the Kubernetes kinds: one API client per target, and a short-lived shared cache of checks."""

    target_kinds: ClassVar[tuple[str, ...]] = ("kubernetes",)
    resources: ClassVar[tuple[str, ...]]

    def __init__(self, spec: SpecT) -> None:
        super().__init__(spec)
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._apis: dict[str, KubeApi] = {}
        self._seen: dict[tuple[str, ...], tuple[float, object]] = {}

    def parallelism(self) -> int:
        return self.spec.parallelism if isinstance(self.spec, ParallelSpec) else self.max_parallel

    def target(self, name: str, ctx: RunContext) -> KubernetesTarget:
        group = kubernetes_target(name, ctx)
        if group.resource not in self.resources:
            wanted = " or ".join(self.resources)
            raise TargetNotFoundError(f"{self.kind} acts on {wanted}; target {name!r} has `resource: {group.resource}`")
        return group

    def api(self, name: str, ctx: RunContext) -> KubeApi:
        """The API client of target `name`, made on first use (each target has its own)."""
        with self._lock:
            if name not in self._apis:
                try:
                    from clients.kube import KubeApi
                except ImportError as exc:
                    raise InjectorError(
                        f"{self.kind} needs the `kubernetes` package: pip install kubernetes ({exc})"
                    ) from exc
                self._apis[name] = KubeApi(kubernetes_target(name, ctx).api, pool_size=self.parallelism() + 2)
            return self._apis[name]

    def seen(self, key: tuple[str, ...], fetch: Callable[[], T]) -> T:
        """`fetch()`, or its result from less than POLL_S ago: targets waiting in parallel share one look."""
        with self._fetch_lock:  # one fetch at a time, so parallel waiters do not all ask at once
            cached = self._seen.get(key)
            if cached is not None and time.monotonic() - cached[0] < POLL_S:
                return cast(T, cached[1])
            value = fetch()
            self._seen[key] = (time.monotonic(), value)
            return value
