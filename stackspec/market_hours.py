"""When a system trades: the market-hours calendar no drill may run in unless the operator overrides it."""

from __future__ import annotations

import datetime
import re
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from stackspec.strict import Strict

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class MarketHours(Strict):
    """When the system trades: no drill may run then unless the operator overrides it explicitly.

    The default is China A-share continuous trading: 09:30-11:30 and 13:00-15:00 Asia/Shanghai,
    Monday to Friday.
    """

    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone of the sessions.")
    weekdays: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS[:5]), description="Days with trading sessions."
    )
    sessions: list[str] = Field(
        default_factory=lambda: ["09:30-11:30", "13:00-15:00"],
        description="Trading sessions as HH:MM-HH:MM (start inclusive, end exclusive), local time.",
    )
    closed: list[str] = Field(
        default_factory=list, description="Dates (YYYY-MM-DD) without trading, e.g. public holidays."
    )

    @model_validator(mode="after")
    def _valid(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r} (use an IANA name such as Asia/Shanghai)") from None
        for session in self.sessions:
            start, _, end = session.partition("-")
            if not (_HHMM.match(start) and _HHMM.match(end) and start < end):
                raise ValueError(f"session {session!r} is not HH:MM-HH:MM with the start before the end")
        for day in self.closed:
            try:
                datetime.date.fromisoformat(day)
            except ValueError:
                raise ValueError(f"closed date {day!r} is not YYYY-MM-DD") from None
        return self

    def session_at(self, when: datetime.datetime) -> str | None:
        """The session `when` (timezone-aware) falls in, or None outside trading hours."""
        local = when.astimezone(ZoneInfo(self.timezone))
        if WEEKDAYS[local.weekday()] not in self.weekdays or local.date().isoformat() in self.closed:
            return None
        clock = local.strftime("%H:%M")
        for session in self.sessions:
            start, _, end = session.partition("-")
            if start <= clock < end:
                return session
        return None
