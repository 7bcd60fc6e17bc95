"""Fault injectors: one fault domain a module, each registered under `domain.action` kinds."""

from injectors.base import FaultPlan, Injector, RunContext, StackAccess, TargetRef, TargetResult
from injectors.errors import (
    FaultStillPresentError,
    InjectionError,
    InjectorError,
    RollbackError,
    SelectionError,
    TargetNotFoundError,
)
from injectors.registry import all_kinds, get_injector, suggest_kind

__all__ = [
    "FaultPlan",
    "FaultStillPresentError",
    "InjectionError",
    "Injector",
    "InjectorError",
    "RollbackError",
    "RunContext",
    "SelectionError",
    "StackAccess",
    "TargetNotFoundError",
    "TargetRef",
    "TargetResult",
    "all_kinds",
    "get_injector",
    "suggest_kind",
]
