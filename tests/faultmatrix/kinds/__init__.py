"""The fault matrix's kinds: one module a fault domain, each with its scenarios and its direct checks.

A module here defines `SCENARIOS` (kind → `Scenario`): where and how each of its kinds is exercised on
one of the matrix's stacks, with the checks that see its effect in place and gone. `scenarios()` gathers
every module's, so adding a kind's scenario touches only its domain's module (test_meta.py fails until
every registered kind has one).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from injectors.base import FaultPlan
    from tests.faultmatrix.checks import Live

StackName = Literal["ha", "containers", "kube"]


@dataclass(frozen=True)
class Scenario:
    """How one kind is exercised on one of the matrix's stacks, and how its effect is seen directly."""

    target: str
    gone: Callable[[Live, FaultPlan], None]  # after the run: the fault is gone (raises AssertionError)
    present: Callable[[Live, FaultPlan], None] | None = None  # while in effect (every ending but the normal one)
    params: dict[str, Any] = field(default_factory=dict)
    select: dict[str, Any] | None = None
    fault_s: float = 1.0  # the fault's duration in the normal ending
    stack: StackName = "ha"  # the `<stack>_stack` fixture the cells run against
    # More params read off the live stack when the cell starts (e.g. a port the stack chose at start-up).
    params_from: Callable[[Live], dict[str, Any]] | None = None


def scenarios() -> dict[str, Scenario]:
    """Every domain module's SCENARIOS, by kind; a kind in two modules is an error."""
    found: dict[str, Scenario] = {}
    for info in pkgutil.iter_modules(__path__, f"{__name__}."):
        module = importlib.import_module(info.name)
        for kind, scenario in getattr(module, "SCENARIOS", {}).items():
            if kind in found:
                raise AssertionError(f"{kind}: a scenario in two modules of tests/faultmatrix/kinds ({info.name})")
            found[kind] = scenario
    return dict(sorted(found.items()))
