"""The drill's market-hours guard, judged with the same MarketHours model the stacks declare."""

from __future__ import annotations

import datetime

from engine.drill.model import CalendarGuard


def calendar_block_reason(guard: CalendarGuard, now: float) -> str | None:
    """Why a drill must not start at `now` (epoch seconds), or None when it may (overrides not considered)."""
    hours = guard.hours()
    if hours is None:
        return None
    when = datetime.datetime.fromtimestamp(now, datetime.UTC)
    session = hours.session_at(when)
    if session is None:
        return None
    local = when.astimezone(datetime.UTC).isoformat(timespec="seconds")
    return f"the market is open: session {session} {hours.timezone} (now {local})"
