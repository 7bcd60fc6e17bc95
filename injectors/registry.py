"""The registry of fault kinds ('domain.action' → injector class), filled by one decorator: `@register`.

Built-in kinds live one a module in the domain packages (`injectors/<domain>/<action>.py`); every
public module there is imported on first use, found on disk — no list to keep. Other packages add
kinds through the entry-point group `trading_chaos.injectors`: each entry point names a module, which
registers its kinds with the same decorator when imported (docs/writing-an-injector.md). Heavy client
libraries (docker, kubernetes) are imported only when a fault of theirs runs, so loading all is cheap.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TypeVar

from injectors.base import FaultSpec, Injector
from injectors.errors import InjectorError

ENTRY_POINT_GROUP = "trading_chaos.injectors"
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
_PACKAGE = Path(__file__).resolve().parent

_REGISTRY: dict[str, type[Injector[FaultSpec]]] = {}
_loaded = False

InjectorT = TypeVar("InjectorT", bound=type[Injector[FaultSpec]])


class UnknownKindError(InjectorError):
    """No injector is registered under the requested kind."""


class PluginError(InjectorError):
    """An injector plugin could not be loaded: its module failed to import, or it registered a kind wrongly."""


def _name(cls: type[object]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: InjectorT) -> InjectorT:
    """Class decorator: make `cls` available under `cls.kind` (refused: a second class for a kind)."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
        raise InjectorError(f"{_name(cls)}: `kind` must be 'domain.action' in snake_case, not {kind!r}")
    spec = getattr(cls, "spec_type", None)
    if not (isinstance(spec, type) and issubclass(spec, FaultSpec)):
        raise InjectorError(f"{_name(cls)} ({kind}): `spec_type` must be a FaultSpec subclass")
    if not getattr(cls, "summary", "").strip():
        raise InjectorError(f"{_name(cls)} ({kind}): give the class a one-sentence docstring (its summary)")
    existing = _REGISTRY.get(kind)
    if existing is not None and existing is not cls:
        raise InjectorError(f"fault kind {kind!r} is registered twice: by {_name(existing)} and by {_name(cls)}")
    _REGISTRY[kind] = cls
    return cls


def builtin_modules() -> list[str]:
    """Every public module of every domain package (`injectors/<domain>/<module>.py`), in name order."""
    found = []
    for domain in pkgutil.iter_modules([str(_PACKAGE)]):
        if domain.ispkg and not domain.name.startswith("_"):
            for module in pkgutil.iter_modules([str(_PACKAGE / domain.name)]):
                if not module.ispkg and not module.name.startswith("_"):
                    found.append(f"{__package__}.{domain.name}.{module.name}")
    return sorted(found)


def plugins() -> list[EntryPoint]:
    """The installed plugins: the entry points of the group `trading_chaos.injectors`, by name."""
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


def _about(plugin: EntryPoint) -> str:
    dist = plugin.dist
    source = f", distribution {dist.name} {dist.version}" if dist is not None else ""
    return f"injector plugin {plugin.name!r} (entry point {plugin.name} = {plugin.value}{source})"


def load_plugin(plugin: EntryPoint) -> None:
    """Import a plugin's module, which registers its kinds; PluginError naming the plugin if that fails."""
    try:
        plugin.load()
    except InjectorError as exc:  # raised by `register`: a malformed or duplicate kind
        raise PluginError(f"{_about(plugin)}: {exc}") from exc
    except Exception as exc:  # whatever its import raised: the plugin is broken, not this program
        remedy = f"pip uninstall {plugin.dist.name}" if plugin.dist is not None else "remove it"
        raise PluginError(
            f"{_about(plugin)} failed to import: {type(exc).__name__}: {exc} (fix it, or {remedy})"
        ) from exc


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for module in builtin_modules():
        importlib.import_module(module)
    for plugin in plugins():
        load_plugin(plugin)
    _loaded = True  # only once everything loaded: a broken plugin is reported on every call


def all_kinds() -> dict[str, type[Injector[FaultSpec]]]:
    """Every registered kind (built-in and from plugins), sorted by name."""
    _load()
    return dict(sorted(_REGISTRY.items()))


def suggest_kind(kind: str) -> str | None:
    """The closest registered kind to a misspelt one, if any is close."""
    matches = difflib.get_close_matches(kind, list(all_kinds()), n=1, cutoff=0.6)
    return matches[0] if matches else None


def get_injector(kind: str) -> type[Injector[FaultSpec]]:
    """The injector class for `kind`; the error names the closest kind when there is one."""
    kinds = all_kinds()
    try:
        return kinds[kind]
    except KeyError:
        hint = suggest_kind(kind)
        tail = f"; did you mean {hint!r}?" if hint else f"; known kinds: {', '.join(kinds)}"
        raise UnknownKindError(f"unknown fault kind {kind!r}{tail}") from None
