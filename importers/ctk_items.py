"""What one Chaos Toolkit activity becomes: a fault, the undoing of one, a wait, a check, or an observation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from importers.ctk_document import Loc


@dataclass
class FaultItem:
    """A fault of this framework; `undo_keys` name what a later resume or scale-back undoes (one per instance)."""

    kind: str
    target: str
    select: dict[str, Any] | None
    params: dict[str, Any]
    undo_keys: frozenset[str]
    what: str


@dataclass
class UndoItem:
    """An activity that undoes earlier faults (SIGCONT after SIGSTOP, scaling a Deployment back)."""

    undo_keys: frozenset[str]
    what: str


@dataclass
class WaitItem:
    """An activity that only waits (chaosaddons' idle_for): time passes on the timeline."""

    seconds: float


@dataclass
class CheckItem:
    """A method probe judged as a steady-state check (option method_probes='judge')."""

    probe: dict[str, Any]


@dataclass
class ObserveItem:
    """A read-only method probe: Chaos Toolkit only records its output, so it is listed and not run."""

    reason: str


Item = FaultItem | UndoItem | WaitItem | CheckItem | ObserveItem


@dataclass
class Step:
    """One activity of the method or the rollbacks, in Chaos Toolkit's order, with its pauses."""

    loc: Loc
    name: str
    before_s: float = 0.0
    after_s: float = 0.0
    background: bool = False
    items: list[Item] = field(default_factory=list)
