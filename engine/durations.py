"""Durations in experiment files: "500ms", "30s", "2m", "1h", "1m30s" → seconds (float)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h))+$"
MAX_SECONDS = 7 * 86400.0  # a week: longer is a typo, and infinity would break arithmetic
MAX_TEXT = 64  # characters: no real duration is longer, and messages stay one short line


def parse_duration(value: Any) -> float:
    """Parse a duration string; plain numbers are refused so that units are always explicit."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration with a unit like '30s', '2m' or '500ms', got {value!r}")
    text = value.strip()
    if not text:
        raise ValueError(f"invalid duration {value!r}: it is empty; use a number with a unit, e.g. '30s', '2m'")
    if len(text) > MAX_TEXT:
        raise ValueError(f"invalid duration {text[:20] + '…'!r}: {len(text)} characters; write it shorter, e.g. '2h'")
    if not re.fullmatch(PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. '30s', '2m', '1m30s', '500ms'")
    seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _PART.findall(text))
    if not seconds <= MAX_SECONDS:  # also catches an overflow to infinity
        raise ValueError(
            f"duration {text!r} is longer than the limit of {MAX_SECONDS / 86400:.0f} days "
            f"({MAX_SECONDS / 3600:.0f}h); use a shorter one"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds → the shortest exact duration string ("90s" → "1m30s")."""
    if seconds < 1 and seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts) or "0s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": "string", "pattern": PATTERN, "examples": ["30s", "2m", "500ms"]}),
]
