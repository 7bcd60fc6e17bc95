"""Secrets never reach a journal, a report or the console: values under secret-looking keys are masked,
and so are passwords in URLs (`redis://:pw@host`, `https://user:pw@host`, `?token=...`).

Stack descriptions should reference secrets as `${ENV_VAR}` (expanded only when a process is started):
the reference is what gets recorded, never the value. This module is the second line of defence for
values written inline anyway.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# Keys whose values are secrets, wherever they appear (stack targets, params, env, details).
SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth(orization)?"
    r"|cookie|session[_-]?key|bearer)$",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&](?:[A-Za-z0-9_.-]*?)(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|sig|signature)"
    r")=(?P<value>[^&#\s]+)",
    re.IGNORECASE,
)
_ENV_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")


def redact_text(text: str) -> str:
    """Mask passwords in URLs and secret-named query parameters inside free text."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}={MASK}", text)


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key.replace("-", "_")))


def redact(value: Any) -> Any:
    """A copy of `value` (JSON-like) with secrets masked; `${VAR}` references are kept as they are."""
    if isinstance(value, dict):
        return {
            key: (
                _mask_value(item)
                if isinstance(key, str) and is_secret_key(key) and not isinstance(item, dict | list)
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _mask_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and (value == "" or _ENV_REFERENCE.match(value)):
        return value
    return MASK
