"""Cron expressions of drill schedules: APScheduler triggers, and the same schedule for crontab/Kubernetes.

APScheduler 3 numbers weekdays from 0 = Monday while cron numbers them from 0 = Sunday, and it ANDs a
restricted day-of-month with a restricted day-of-week where cron ORs them. So that one expression
means the same thing to the scheduler, to crontab and to a Kubernetes CronJob, a drill's cron
names its weekdays (`mon-fri`, `sat`) and restricts at most one of the two day fields.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # index = cron's weekday number
FIELDS_5 = ("minute", "hour", "day", "month", "day_of_week")
FIELDS_6 = ("second", *FIELDS_5)


def zone(name: str) -> ZoneInfo:
    """An IANA time zone; ValueError naming the fix when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Asia/Shanghai' or 'UTC'") from None


def _fields(expr: str) -> dict[str, str]:
    values = expr.split()
    if len(values) not in (5, 6):
        raise ValueError(
            f"cron {expr!r} has {len(values)} fields; expected 5 (minute hour day month weekday) "
            "or 6 (second first, for tests)"
        )
    fields = dict(zip(FIELDS_5 if len(values) == 5 else FIELDS_6, values, strict=True))
    dow = fields["day_of_week"]
    if re.search(r"\d", dow):
        raise ValueError(
            f"weekday field {dow!r}: write weekday names (mon-fri, sat, sun), not numbers: cron counts 0 as "
            "Sunday, APScheduler as Monday"
        )
    if fields["day"] not in ("*", "?") and dow not in ("*", "?"):
        raise ValueError(
            "restrict the day of month or the weekday, not both (cron and APScheduler combine them differently)"
        )
    return fields


def trigger(expr: str, tz: tzinfo | str) -> CronTrigger:
    """The APScheduler trigger of a drill's cron (5 fields, or 6 with seconds first); ValueError if invalid."""
    fields = _fields(expr)
    zone_info = zone(tz) if isinstance(tz, str) else tz
    try:
        return CronTrigger(**{k: v for k, v in fields.items() if v != "?"}, timezone=zone_info)
    except ValueError as exc:
        raise ValueError(f"invalid cron {expr!r}: {exc}") from None


def has_seconds(expr: str) -> bool:
    return len(expr.split()) == 6


def _weekday_numbers(dow: str) -> str:
    """`mon-fri,sun` → `1-5,0`: cron's numbers (7 for Sunday closing a range), as every cron reads them."""

    def number(name: str, closes_range: bool) -> str:
        index = DAY_NAMES.index(name.lower()[:3])
        return "7" if index == 0 and closes_range else str(index)

    parts = []
    for part in dow.split(","):
        base, _, step = part.partition("/")
        if "-" in base:
            first, last = base.split("-", 1)
            base = f"{number(first, False)}-{number(last, True)}"
        elif base not in ("*", "?"):
            base = number(base, False)
        parts.append(base + (f"/{step}" if step else ""))
    return ",".join(parts)


def standard_cron(expr: str) -> str:
    """The drill's cron as a standard 5-field expression for crontab and Kubernetes (no seconds field)."""
    fields = _fields(expr)
    if "second" in fields:
        raise ValueError(f"cron {expr!r} has a seconds field; crontab and Kubernetes schedule by the minute")
    fields["day_of_week"] = _weekday_numbers(fields["day_of_week"])
    fields = {k: "*" if v == "?" else v for k, v in fields.items()}
    return " ".join(fields[name] for name in FIELDS_5)


def fires_between(trig: CronTrigger, start: datetime, end: datetime, limit: int = 10_000) -> list[datetime]:
    """Fire times t with start < t <= end (bounded: a schedule never has more than `limit` in a window)."""
    found: list[datetime] = []
    cursor = start + timedelta(microseconds=1)
    while len(found) < limit:
        nxt = trig.get_next_fire_time(None, cursor)
        if nxt is None or nxt > end:
            break
        found.append(nxt)
        cursor = nxt + timedelta(microseconds=1)
    return found


def last_fire(trig: CronTrigger, now: datetime, lookback: timedelta) -> datetime | None:
    """The latest fire time in (now - lookback, now], if any."""
    latest = None
    cursor = now - lookback + timedelta(microseconds=1)
    while (nxt := trig.get_next_fire_time(None, cursor)) is not None and nxt <= now:
        latest, cursor = nxt, nxt + timedelta(microseconds=1)
    return latest
