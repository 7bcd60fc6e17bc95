"""Guards before a run: the trading calendar, production consent, and what is journaled about them."""

from __future__ import annotations

import datetime

import pytest
from pydantic import ValidationError

from engine.errors import ExitCode, GuardRefusedError
from engine.guards import GuardOptions, Override, check_start
from stackspec.targets import MarketHours, StackDescription

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(
    ("when", "session"),
    [
        ("2026-11-30T09:29:59+08:00", None),  # Monday, a second before the open
        ("2026-11-30T09:30:00+08:00", "09:30-11:30"),
        ("2026-11-30T11:29:59+08:00", "09:30-11:30"),
        ("2026-11-30T11:30:00+08:00", None),  # the lunch break
        ("2026-11-30T12:59:59+08:00", None),
        ("2026-11-30T13:00:00+08:00", "13:00-15:00"),
        ("2026-11-30T14:59:00+08:00", "13:00-15:00"),
        ("2026-11-30T15:00:00+08:00", None),  # the close
        ("2026-11-28T10:00:00+08:00", None),  # Saturday
        ("2026-11-30T02:00:00+00:00", "09:30-11:30"),  # the same instant seen from UTC
    ],
)
def test_default_calendar_is_a_share_continuous_trading_in_shanghai(when: str, session: str | None) -> None:
    assert MarketHours().session_at(at(when)) == session


def test_closed_dates_and_custom_sessions() -> None:
    hours = MarketHours(timezone="America/New_York", sessions=["09:30-16:00"], closed=["2026-11-26"])
    assert hours.session_at(at("2026-11-25T10:00:00-05:00")) == "09:30-16:00"
    assert hours.session_at(at("2026-11-26T10:00:00-05:00")) is None  # Thanksgiving


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Mars/Olympus", "unknown time zone"),
        ("sessions", ["9:30-11:30"], "is not HH:MM-HH:MM"),
        ("sessions", ["15:00-13:00"], "is not HH:MM-HH:MM"),
        ("closed", ["2026-13-01"], "is not YYYY-MM-DD"),
        ("weekdays", ["monday"], "Input should be"),
    ],
)
def test_bad_calendars_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MarketHours.model_validate({field: value})


def test_market_hours_refuse_a_run_unless_overridden_and_the_override_is_recorded() -> None:
    desc = StackDescription(name="prod-like")  # the default calendar
    open_now = at("2026-11-30T10:00:00+08:00")
    with pytest.raises(GuardRefusedError, match="the market is open: 09:30-11:30 Asia/Shanghai") as refused:
        check_start(desc, GuardOptions(now=open_now))
    assert refused.value.exit_code == ExitCode.CANNOT_RUN

    records = check_start(desc, GuardOptions(now=open_now, market_hours=Override("DR test approved", by="sre@x")))
    (hours,) = [r for r in records if r.name == "market_hours"]
    assert (hours.ok, hours.overridden, hours.by, hours.reason) == (True, True, "sre@x", "DR test approved")

    closed = check_start(desc, GuardOptions(now=at("2026-11-30T12:00:00+08:00")))
    assert [r.overridden for r in closed] == [False, False] and all(r.ok for r in closed)


def test_a_production_stack_needs_consent_and_the_consent_names_who_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    desc = StackDescription(name="prod", production=True, market_hours=None)
    with pytest.raises(GuardRefusedError, match="marked production"):
        check_start(desc, GuardOptions())
    monkeypatch.setenv("CHAOS_OPERATOR", "alice")
    records = check_start(desc, GuardOptions(production=Override("quarterly DR drill, change CHG-1")))
    (prod,) = [r for r in records if r.name == "production"]
    assert prod.overridden and prod.reason == "quarterly DR drill, change CHG-1"
    assert prod.by is not None and prod.by.startswith("alice@")


def test_both_refusals_are_reported_at_once() -> None:
    desc = StackDescription(name="prod", production=True)
    with pytest.raises(GuardRefusedError) as refused:
        check_start(desc, GuardOptions(now=at("2026-11-30T14:00:00+08:00")))
    assert "marked production" in str(refused.value) and "the market is open" in str(refused.value)
