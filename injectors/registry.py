"""Registry of injector kinds ('domain.action' → class), filled by the fault-domain modules."""

from __future__ import annotations

import difflib
import importlib
from typing import Any, TypeVar

from injectors.base import Injector
from injectors.errors import InjectorError

# Fault-domain modules register their kinds on import. Heavy client libraries (docker, kubernetes)
# are imported inside those modules only when a fault of theirs runs, so loading all is cheap.
_BUILTIN_MODULES = (
    "injectors.process",
    "injectors.network",
    "injectors.redis",
    "injectors.zookeeper",
    "injectors.container",
    "injectors.pod",
)

_REGISTRY: dict[str, type[Injector[Any]]] = {}
_loaded = False

InjectorT = TypeVar("InjectorT", bound=type[Injector[Any]])


class UnknownKindError(InjectorError):
    """No injector is registered under the requested kind."""


def register(cls: InjectorT) -> InjectorT:
    """Class decorator: make `cls` available under `cls.kind`."""
    existing = _REGISTRY.get(cls.kind)
    if existing is not None and existing is not cls:
        raise InjectorError(f"fault kind {cls.kind!r} registered twice ({existing.__name__}, {cls.__name__})")
    _REGISTRY[cls.kind] = cls
    return cls


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def all_kinds() -> dict[str, type[Injector[Any]]]:
    """Every registered kind, sorted by name."""
    _load_builtin()
    return dict(sorted(_REGISTRY.items()))


def suggest_kind(kind: str) -> str | None:
    """The closest registered kind to a misspelt one, if any is close."""
    matches = difflib.get_close_matches(kind, list(all_kinds()), n=1, cutoff=0.6)
    return matches[0] if matches else None


def get_injector(kind: str) -> type[Injector[Any]]:
    """The injector class for `kind`; the error names the closest kind when there is one."""
    kinds = all_kinds()
    try:
        return kinds[kind]
    except KeyError:
        hint = suggest_kind(kind)
        tail = f"; did you mean {hint!r}?" if hint else f"; known kinds: {', '.join(kinds)}"
        raise UnknownKindError(f"unknown fault kind {kind!r}{tail}") from None
