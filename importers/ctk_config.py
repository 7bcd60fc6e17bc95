"""Chaos Toolkit configuration (literal values, env with defaults and types) and `${name}` substitution; secrets
are recognised by name so that none is ever written into a converted experiment."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Template
from typing import Any

from importers.ctk_document import Context, Loc
from importers.ctk_options import ConvertOptions


@dataclass
class Values:
    """Configuration values known at conversion time, and the names secrets are referred to by."""

    config: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # key → its scope ("k8s"); the value is never read


def _typed(kind: Any, raw: Any) -> Any:
    """An environment value converted as `env_var_type` asks; raises ValueError with the reason."""
    if kind is None or kind in ("str", "string") or not isinstance(raw, str):
        return raw
    if kind in ("int", "integer"):
        return int(raw)
    if kind in ("float", "number"):
        return float(raw)
    if kind == "bool":
        return raw.lower() not in ("false", "0", "no")
    if kind == "json":
        return json.loads(raw) if raw else raw
    if kind == "bytes":
        raise ValueError("a bytes value cannot be written into an experiment file")
    raise ValueError(f"unknown env_var_type {kind!r} (known: str, int, float, bool, json)")


def _config_entry(ctx: Context, key: str, spec: Any, options: ConvertOptions, env: Mapping[str, str]) -> Any:
    loc: Loc = ("configuration", key)
    if key in options.variables:
        ctx.decide(loc, "given as a variable at conversion (it overrides the document's value)")
        return options.variables[key]
    if not isinstance(spec, dict) or "type" not in spec:
        ctx.decide(loc, "a literal value, used as written")
        return spec
    kind = spec.get("type")
    if kind == "probe":
        ctx.refuse(
            (*loc, "type"),
            "dynamic configuration runs an activity to compute the value, and imported activities are never run; "
            f"give the value as a variable instead (`--var {key}=VALUE`)",
        )
        return None
    if kind != "env":
        ctx.decide(loc, f"a mapping with type {kind!r}: used as written (only 'env' is resolved)")
        return spec
    name = spec.get("key")
    if not isinstance(name, str) or not name:
        ctx.refuse((*loc, "key"), "an env configuration entry needs `key`, the environment variable's name")
        return None
    if name in env:
        raw, where = env[name], f"from ${name} (set at conversion time)"
    elif "default" in spec:
        raw, where = spec["default"], f"to its default {spec['default']!r} (${name} is not set)"
    else:
        ctx.refuse(
            (*loc, "key"),
            f"environment variable {name} is not set and the entry has no default "
            f"(set it, or give `--var {key}=VALUE`)",
        )
        return None
    try:
        value = _typed(spec.get("env_var_type"), raw)
    except ValueError as exc:
        ctx.refuse((*loc, "env_var_type"), f"cannot convert {name}: {exc}")
        return None
    ctx.decide(loc, f"resolved {where}; the value is written where it is used")
    return value


def _secrets(ctx: Context, data: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    if data is None:
        return names
    if not isinstance(data, dict):
        ctx.refuse(("secrets",), "secrets must be a mapping of scopes, each a mapping of secret names")
        return names
    for scope, entries in data.items():
        if not isinstance(entries, dict):
            ctx.refuse(("secrets", scope), "a secrets scope must be a mapping of secret names")
            continue
        for key, spec in entries.items():
            names[key] = scope
            source = spec.get("type") if isinstance(spec, dict) else "inline"
            origin = f"${spec.get('key')}" if source == "env" and isinstance(spec, dict) else f"a {source} value"
            ctx.decide(
                ("secrets", scope, key),
                f"secret from {origin}: not read and never written into the experiment — credentials here belong in "
                "the stack description (a Kubernetes target's token_env or kubeconfig, an SSH key_passphrase_env)",
            )
    return names


def load_values(ctx: Context, options: ConvertOptions) -> Values:
    """Resolve the document's configuration now (env with defaults, typed) and note its secrets' names."""
    env = os.environ if options.environ is None else options.environ
    values = Values()
    config = ctx.source.data.get("configuration")
    if config is not None and not isinstance(config, dict):
        ctx.refuse(("configuration",), "configuration must be a mapping of names to values")
    elif config:
        for key, spec in config.items():
            values.config[key] = _config_entry(ctx, key, spec, options, env)
    for key in options.variables:
        if key not in values.config:
            values.config[key] = options.variables[key]
            ctx.decide(("configuration",), f"variable {key!r} given at conversion (not in the document)")
    values.secrets = _secrets(ctx, ctx.source.data.get("secrets"))
    return values


def references(value: Any) -> list[str]:
    """Every `$name` / `${name}` a value refers to, in order."""
    if isinstance(value, str):
        found = []
        for match in Template.pattern.finditer(value):
            name = match.group("named") or match.group("braced")
            if name:
                found.append(name)
        return found
    if isinstance(value, dict):
        return [name for item in value.values() for name in references(item)]
    if isinstance(value, list | tuple):
        return [name for item in value for name in references(item)]
    return []


def _substitute_text(text: str, config: Mapping[str, Any]) -> Any:
    whole = Template.pattern.fullmatch(text)
    if whole is not None:
        name = whole.group("named") or whole.group("braced")
        if name in config:
            return config[name]  # a value that is only a reference keeps its type, as in Chaos Toolkit
    return Template(text).safe_substitute({key: str(value) for key, value in config.items()})


def substitute(value: Any, config: Mapping[str, Any]) -> Any:
    """`${name}` replaced from the configuration, recursively; unknown names are left as they are."""
    if isinstance(value, str):
        return _substitute_text(value, config)
    if isinstance(value, dict):
        return {key: substitute(item, config) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, config) for item in value]
    return value


def resolve(ctx: Context, loc: Loc, value: Any, values: Values) -> tuple[Any, bool]:
    """Substitute a value that the conversion will use; refuses secrets and names nothing defines.

    Returns (value, ok): ok is False when something was refused (the value is then not to be used).
    """
    ok = True
    for name in dict.fromkeys(references(value)):
        if name in values.config:
            if values.config[name] is None:
                ok = False  # its own entry was refused already
            continue
        if name in values.secrets:
            ctx.refuse(
                loc,
                f"refers to the secret ${{{name}}} (secrets.{values.secrets[name]}): a secret is never written into "
                "an experiment file; move the credential into the stack description",
            )
        else:
            ctx.refuse(loc, f"${{{name}}} is not defined in the configuration (give `--var {name}=VALUE`)")
        ok = False
    return substitute(value, values.config), ok
