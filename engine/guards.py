"""Guards checked before a run starts: production consent, the trading calendar, blast radius at run time.

Every guard is journaled, passed or overridden, with who overrode it and why: an override is a
decision someone answers for, so it is on record next to the run it allowed.
"""

from __future__ import annotations

import datetime
import getpass
import os
import socket
from dataclasses import dataclass

from engine.errors import GuardRefusedError
from engine.journal import GuardRecord
from stackspec.targets import MarketHours, StackDescription


@dataclass(frozen=True)
class Override:
    """An explicit decision to run past a guard."""

    reason: str
    by: str = ""

    def who(self) -> str:
        return self.by or operator()


def operator() -> str:
    """Who is running this: $CHAOS_OPERATOR, else the login name, with the host."""
    name = os.environ.get("CHAOS_OPERATOR") or getpass.getuser()
    return f"{name}@{socket.gethostname()}"


@dataclass(frozen=True)
class GuardOptions:
    production: Override | None = None  # --i-understand-production --reason ...
    market_hours: Override | None = None  # --ignore-market-hours --reason ...
    now: datetime.datetime | None = None  # the clock the calendar is judged on (tests set it)


def market_open(hours: MarketHours | None, now: datetime.datetime) -> str | None:
    """Why `now` is inside one of the trading sessions ("the market is open: …"), or None when it is not."""
    session = hours.session_at(now) if hours is not None else None
    if hours is None or session is None:
        return None
    local = now.astimezone(datetime.UTC).isoformat(timespec="seconds")
    return f"the market is open: {session} {hours.timezone} (now {local})"


def check_start(desc: StackDescription, options: GuardOptions) -> list[GuardRecord]:
    """Judge the stack-level guards; raises GuardRefusedError (nothing started) naming each refusal."""
    now = options.now or datetime.datetime.now(datetime.UTC)
    records: list[GuardRecord] = []
    refused: list[str] = []

    if desc.production:
        if options.production is None:
            refused.append(
                f"stack {desc.name!r} is marked production: pass --i-understand-production with --reason "
                "to drill it (who and why are recorded in the journal)"
            )
            records.append(GuardRecord(name="production", ok=False, detail="production stack, no consent"))
        else:
            records.append(
                GuardRecord(
                    name="production",
                    ok=True,
                    overridden=True,
                    detail=f"production stack {desc.name!r}: drilled with explicit consent",
                    by=options.production.who(),
                    reason=options.production.reason,
                )
            )
    else:
        records.append(GuardRecord(name="production", ok=True, detail=f"stack {desc.name!r} is not production"))

    hours = desc.market_hours
    open_now = market_open(hours, now)
    if hours is None:
        records.append(GuardRecord(name="market_hours", ok=True, detail="the stack declares no trading hours"))
    elif open_now is None:
        local = now.astimezone(datetime.UTC).isoformat(timespec="seconds")
        records.append(
            GuardRecord(name="market_hours", ok=True, detail=f"outside trading hours ({hours.timezone}) at {local}")
        )
    elif options.market_hours is None:
        refused.append(f"{open_now}; drills run outside trading hours, or pass --ignore-market-hours with --reason")
        records.append(GuardRecord(name="market_hours", ok=False, detail=open_now))
    else:
        records.append(
            GuardRecord(
                name="market_hours",
                ok=True,
                overridden=True,
                detail=f"run anyway: {open_now}",
                by=options.market_hours.who(),
                reason=options.market_hours.reason,
            )
        )
    if refused:
        raise GuardRefusedError("refused, nothing was started:\n  " + "\n  ".join(refused))
    return records
