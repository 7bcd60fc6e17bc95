"""Recovery time (RTO) of a fault, measured on the second-by-second steady-state series.

RTO = fault start until the steady state holds again, where "holds again" means the first second of
a run of `stable_for` consecutive healthy seconds after the fault first hurt the steady state.
A fault that never hurt it recovers at once (RTO 0). Resolution: one second.
"""

from __future__ import annotations

import math

from engine.journal import RecoveryRecord, SteadyPoint


def measure(
    steady: list[SteadyPoint],
    fault_start: float,
    fault_end: float,
    observed_until: float,
    stable_for: float,
) -> RecoveryRecord:
    """Measure one fault's recovery from the steady series (one point per whole second)."""
    need = max(1, math.ceil(stable_for))
    first = math.floor(fault_start)
    points = [p for p in steady if first <= p.t < observed_until]
    # Impact may show at any time while the fault is in place, and while its rollback settles.
    degraded = [p for p in points if not p.ok and p.t < fault_end + need]
    impact = sum(1 for p in points if not p.ok)
    if not degraded:
        return RecoveryRecord(
            degraded_at=None,
            recovered_at=fault_start,
            rto_s=0.0,
            impact_s=impact,
            recovered=True,
            detail="the steady state held throughout: no visible impact",
        )
    degraded_at = degraded[0].t
    run_start: float | None = None
    run_length = 0
    previous: float | None = None
    for point in points:
        if point.t < degraded_at:
            continue
        contiguous = previous is not None and point.t == previous + 1
        previous = point.t
        if not point.ok:
            run_start, run_length = None, 0
            continue
        if run_start is None or not contiguous:
            run_start, run_length = point.t, 0
        run_length += 1
        if run_length >= need:
            recovered_at = max(run_start, fault_start)
            return RecoveryRecord(
                degraded_at=degraded_at,
                recovered_at=recovered_at,
                rto_s=round(recovered_at - fault_start, 3),
                impact_s=impact,
                recovered=True,
                detail=f"steady state held again from +{recovered_at - fault_start:.1f}s for {need}s or more",
            )
    return RecoveryRecord(
        degraded_at=degraded_at,
        recovered_at=None,
        rto_s=None,
        impact_s=impact,
        recovered=False,
        detail=f"the steady state did not hold for {need}s in a row before observation ended",
    )
