"""Fault injectors: the injector contract, and the fault kinds — one `domain.action` kind a module.

The contract is `injectors.base` (specs, plans, outcomes, the `Injector` base class), `injectors.errors`
(the error tree), `injectors.selection` and `injectors.registry` (`@register`, discovery, plugins). The
kinds live in the domain packages: `injectors/<domain>/<action>.py`, what a domain's kinds share in its
`common.py`. docs/writing-an-injector.md shows how to write one, here or in a plugin package.
"""

from injectors.base import (
    FaultPlan,
    FaultSpec,
    Injector,
    Outcome,
    RunContext,
    StackAccess,
    TargetRef,
    TargetResult,
)
from injectors.errors import (
    FaultStillPresentError,
    InjectionError,
    InjectorError,
    RollbackError,
    SelectionError,
    TargetNotFoundError,
)
from injectors.registry import (
    ENTRY_POINT_GROUP,
    PluginError,
    UnknownKindError,
    all_kinds,
    get_injector,
    register,
    suggest_kind,
)
from injectors.selection import Selection

__all__ = [
    "ENTRY_POINT_GROUP",
    "FaultPlan",
    "FaultSpec",
    "FaultStillPresentError",
    "InjectionError",
    "Injector",
    "InjectorError",
    "Outcome",
    "PluginError",
    "RollbackError",
    "RunContext",
    "Selection",
    "SelectionError",
    "StackAccess",
    "TargetNotFoundError",
    "TargetRef",
    "TargetResult",
    "UnknownKindError",
    "all_kinds",
    "get_injector",
    "register",
    "suggest_kind",
]
