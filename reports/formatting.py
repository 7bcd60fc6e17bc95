"""How every report writes verdicts, counts, durations, times and fault names: one wording for all of them.

A shared module, not a renderer: any module of reports/ may import it, and it imports none of them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from engine.journal import FaultRecord

# A run's verdicts (engine.journal.Verdict) and a drill's (drilling.record.DrillVerdict): label and tone.
VERDICTS: dict[str, tuple[str, str]] = {
    "passed": ("Passed", "good"),
    "deviated": ("Deviated", "bad"),
    "failed": ("Failed", "bad"),
    "rollback_failed": ("Rollback failed", "bad"),
    "error": ("Error", "bad"),
    "interrupted": ("Interrupted", "warn"),
    "aborted": ("Aborted", "bad"),
    "running": ("Incomplete", "warn"),
}


def verdict(value: str) -> tuple[str, str]:
    """A verdict's label and tone ('good', 'bad' or 'warn'); one not in VERDICTS is shown as written, amber."""
    return VERDICTS.get(value, (value, "warn"))


def plural(count: int, word: str) -> str:
    """'1 file', '2 files', '1,204 cancels': the count with thousands separators and the word in number."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def seconds(value: float | None, missing: str = "—") -> str:
    """A recovery figure to a tenth of a second, '2.6 s'; `missing` when it was not measured."""
    return missing if value is None else f"{value:.1f} s"


def format_duration(value: float | None) -> str:
    """A duration in words: '4.5 s', '45 s', '6 min 05 s', '1 h 02 min'; an em dash when unknown."""
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_offset(value: float) -> str:
    """Seconds since a start, compact (axis labels, drill times): 45s, 1m30s, 10m, 1h30m, 2h."""
    s = round(value)
    if s < 60:
        return f"{s}s"
    minutes, rest = divmod(s, 60)
    if rest:
        return f"{minutes}m{rest:02d}s"
    hours, rest_m = divmod(minutes, 60)
    if not hours:
        return f"{minutes}m"
    return f"{hours}h{rest_m:02d}m" if rest_m else f"{hours}h"


def signed_offset(value: float) -> str:
    """An offset from a start with its sign: '+1m30s', '-5s'."""
    return f"{'-' if value < 0 else '+'}{format_offset(abs(value))}"


def utc_iso(t: float, timespec: Literal["seconds", "milliseconds"] = "seconds", zone: str = "Z") -> str:
    """A Unix time as ISO 8601 in UTC: '2025-11-25T06:00:00Z'; `zone=""` for JUnit, whose timestamp has none."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec=timespec).replace("+00:00", zone)


def fault_name(fault: FaultRecord) -> str:
    """How a fault is named in reports: '#1 process.kill matcher'."""
    return f"#{fault.index} {fault.kind} {fault.target}"


def measured_label(key: str) -> str:
    """`promoted_after_s` → "Promoted after": how a measured time is labelled in reports."""
    return key.removesuffix("_s").replace("_", " ").capitalize()
