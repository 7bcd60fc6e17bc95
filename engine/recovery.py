"""The recovery figures of one fault, measured on the second-by-second steady series (docs/recovery.md).

Seconds are whole-second buckets [t, t+1). With I the injection, E the fault's end (rollback
verified) and n = recovery.stable_for in whole seconds:

* degraded_at — the first second overlapping [I, E + n) in which the steady state did not hold; a
  second that began before I straddles the injection and is clamped to I (never "before the fault").
* recovered_at — the first second of n healthy seconds in a row after degraded_at (I without
  impact). Before E — while the fault is in place — only if every second from it until E kept every
  entry's in-window tolerance; otherwise the search goes on after the last second that did not.
* settled_at — after the fault ended: the first time at or after E from which n seconds in a row
  were healthy (the second that straddles E counts, clamped to E).
* from_start_s = recovered_at - I; impact_s = recovered_at - degraded_at; after_end_s = settled_at - E.
Resolution: one second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.journal import RecoveryRecord, SteadyPoint
from engine.model import RtoFrom


def _held_run(points: Sequence[SteadyPoint], start: int, need: int) -> int | None:
    """Index of the first point at or after `start` that begins `need` healthy, contiguous seconds."""
    run_start: int | None = None
    for i in range(start, len(points)):
        if not points[i].ok:
            run_start = None
            continue
        if run_start is None or points[i].t != points[i - 1].t + 1:
            run_start = i
        if i - run_start + 1 >= need:
            return run_start
    return None


def _recovery_index(points: Sequence[SteadyPoint], degraded: int, fault_end: float, need: int) -> int | None:
    """The recovery's first second; in the fault window only if every in-window tolerance held to its end."""
    start = degraded
    while (found := _held_run(points, start, need)) is not None:
        breaches = [i for i in range(found, len(points)) if points[i].t < fault_end and points[i].tolerated is False]
        if not breaches:
            return found
        start = breaches[-1] + 1  # held again only after the last second beyond an in-window tolerance
    return None


def measure(
    steady: list[SteadyPoint],
    fault_start: float,
    fault_end: float,
    observed_until: float,
    stable_for: float,
    rto_from: RtoFrom = "fault_start",
    ended: bool = True,
) -> RecoveryRecord:
    """Measure one fault's recovery figures from the steady series (one point per whole second).

    `fault_end` is when the rollback was verified (or the end of observation when `ended` is False:
    the fault never ended, so nothing is measured after its end).
    """
    need = max(1, math.ceil(stable_for))
    points = [p for p in steady if p.t + 1 > fault_start and p.t < observed_until]
    deviating = sum(1 for p in points if not p.ok)
    # Impact may show at any time while the fault is in place, and while its rollback settles.
    degraded = next((i for i, p in enumerate(points) if not p.ok and p.t < fault_end + need), None)
    if degraded is None:
        recovered_at: float | None = fault_start
        degraded_at = None
    else:
        degraded_at = max(points[degraded].t, fault_start)
        found = _recovery_index(points, degraded, fault_end, need)
        recovered_at = None if found is None else max(points[found].t, fault_start)
    settled_at: float | None = None
    if ended and recovered_at is not None:
        if recovered_at >= fault_end:
            settled_at = recovered_at
        else:
            first = next((i for i, p in enumerate(points) if p.t + 1 > fault_end), len(points))
            run = _held_run(points, first, need)
            settled_at = None if run is None else max(points[run].t, fault_end)
    from_start = None if recovered_at is None else round(recovered_at - fault_start, 3)
    after_end = None if settled_at is None else round(settled_at - fault_end, 3)
    impact = None if recovered_at is None else round(recovered_at - (degraded_at or recovered_at), 3)
    rto = from_start if rto_from == "fault_start" else after_end
    return RecoveryRecord(
        degraded_at=degraded_at,
        degraded_straddles=degraded is not None and points[degraded].t < fault_start,
        recovered_at=recovered_at,
        recovered_in_window=recovered_at is not None and degraded_at is not None and recovered_at < fault_end,
        settled_at=settled_at,
        from_start_s=from_start,
        impact_s=impact,
        after_end_s=after_end,
        rto_from=rto_from,
        rto_s=rto,
        deviating_seconds=deviating,
        recovered=rto is not None,
        detail=_detail(degraded_at, recovered_at, settled_at, fault_start, fault_end, need, ended),
    )


def _detail(
    degraded_at: float | None,
    recovered_at: float | None,
    settled_at: float | None,
    fault_start: float,
    fault_end: float,
    need: int,
    ended: bool,
) -> str:
    if degraded_at is None:
        text = "the steady state held throughout: no visible impact"
    elif recovered_at is None:
        return f"the steady state did not hold for {need}s in a row before observation ended"
    elif recovered_at < fault_end:
        text = (
            f"steady state held again from +{recovered_at - fault_start:.1f}s for {need}s or more, while the fault "
            "was still in place: every in-window tolerance held from then until it ended"
        )
    else:
        text = f"steady state held again from +{recovered_at - fault_start:.1f}s for {need}s or more"
    if not ended:
        return text + "; the fault did not end (its rollback was not verified): nothing measured after its end"
    if settled_at is None:
        return text + f"; after the fault ended it did not hold for {need}s in a row before observation ended"
    return text
