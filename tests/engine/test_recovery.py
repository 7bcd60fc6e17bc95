"""RTO from the second-by-second steady series."""

from __future__ import annotations

import pytest

from engine.journal import SteadyPoint
from engine.recovery import measure


def series(pattern: str, start: int = 0) -> list[SteadyPoint]:
    """'+' = steady state held that second, '-' = it did not."""
    return [SteadyPoint(t=float(start + i), ok=c == "+") for i, c in enumerate(pattern)]


@pytest.mark.parametrize(
    ("pattern", "fault_at", "fault_end", "rto", "impact"),
    [
        ("++++++++++----++++++++", 10.4, 20, 3.6, 4),  # fault at 10.4, recovered from second 14
        ("++++++++++++++++++++++", 10.0, 15, 0.0, 0),  # no visible impact
        ("++++++++++-+--++++++++", 10.0, 15, 4.0, 3),  # a short good blip is not recovery
        ("++++++++++++-----+++++", 10.0, 15, 7.0, 5),  # impact shows late, while the fault is in place
        ("++++++++++---+-++++++", 10.0, 12, 5.0, 4),  # recovery needs stable_for seconds in a row
    ],
)
def test_rto(pattern: str, fault_at: float, fault_end: float, rto: float, impact: int) -> None:
    rec = measure(series(pattern), fault_at, fault_end, len(pattern), stable_for=3)
    assert rec.recovered
    assert rec.rto_s == pytest.approx(rto)
    assert rec.impact_s == impact


def test_not_recovered_before_the_end() -> None:
    rec = measure(series("++++++++++------------++"), 10.0, 15.0, 24.0, stable_for=3)
    assert not rec.recovered and rec.rto_s is None and rec.recovered_at is None
    assert rec.degraded_at == 10.0
