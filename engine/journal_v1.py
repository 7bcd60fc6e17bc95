"""Reading schema-1 journals: upgraded to the current schema, with what they never recorded marked as such.

Schema 1 knew one outcome per judgement (a boolean) and one recovery figure. Upgraded, a boolean
becomes held/failed (an integrity check with an error: not checked), the schema-1 `rto_s` becomes
the time from the fault's start, its seconds-without-steady-state count becomes `deviating_seconds`,
and a degradation time that a whole-second bucket put before the injection is clamped to the
injection and marked as straddling it. The time to recover after the fault ended and the in-window
tolerances were not recorded: they stay unknown (None), and the recovery's detail says so.
"""

from __future__ import annotations

import re
from typing import Any

PERSISTED = "acknowledged_orders_persisted"
# What schema-1 summaries said after a passed run, even when no acknowledgement had been reconciled.
_HELD_CLAIM = re.compile(r"Integrity held: all [\d,]+ acknowledged orders accounted for\.")
NOT_RECORDED = "written by schema 1: the time after the fault ended and in-window tolerances were not recorded"


def _recovery(fault: dict[str, Any]) -> dict[str, Any] | None:
    old = fault.get("recovery")
    if not isinstance(old, dict):
        return None
    injected = fault.get("injected_at")
    ended = fault.get("ended_at")
    degraded, recovered_at = old.get("degraded_at"), old.get("recovered_at")
    straddles = degraded is not None and injected is not None and degraded < injected
    if straddles:
        degraded = injected
    impact = None
    if degraded is None and old.get("recovered"):
        impact = 0.0
    elif degraded is not None and recovered_at is not None:
        impact = round(max(0.0, recovered_at - degraded), 3)
    detail = "; ".join(text for text in (old.get("detail") or "", NOT_RECORDED) if text)
    return {
        "degraded_at": degraded,
        "degraded_straddles": straddles,
        "recovered_at": recovered_at,
        "recovered_in_window": recovered_at is not None and ended is not None and recovered_at < ended,
        "from_start_s": old.get("rto_s"),
        "impact_s": impact,
        "rto_from": "fault_start",
        "rto_s": old.get("rto_s"),
        "deviating_seconds": int(old.get("impact_s") or 0),
        "recovered": bool(old.get("recovered")),
        "detail": detail,
    }


def _integrity(record: Any) -> Any:
    """Schema 1 called a check that examined nothing "ok"; nothing examined is not checked."""
    if isinstance(record, dict) and record.get("ok") and not record.get("checked"):
        why = "nothing to check: it examined 0 items (schema 1 recorded this as holding)"
        return {**record, "ok": False, "status": "not_checked", "why": why}
    return record


def _objective(record: Any, unchecked: dict[str, str]) -> Any:
    if isinstance(record, dict) and record.get("name") == "rpo_orders" and PERSISTED in unchecked:
        why = f"{PERSISTED} was not checked: {unchecked[PERSISTED]}"
        return {**record, "observed": None, "met": False, "status": "not_checked", "why": why}
    return record


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 journal as schema-2 data (the input is not changed)."""
    data = dict(raw)
    data["integrity"] = [_integrity(r) for r in data.get("integrity") or []]
    unchecked = {
        r["name"]: r.get("why") or r.get("error") or ""
        for r in data["integrity"]
        if isinstance(r, dict) and (r.get("status") == "not_checked" or r.get("error"))
    }
    data["objectives"] = [_objective(o, unchecked) for o in data.get("objectives") or []]
    if PERSISTED in unchecked:
        data["rpo"] = []  # schema 1 wrote "0 lost" per fault even when nothing was reconciled
        summary = str(data.get("summary") or "")
        data["summary"] = _HELD_CLAIM.sub(f"Integrity not checked: {PERSISTED} ({unchecked[PERSISTED]}).", summary)
    faults = []
    for fault in data.get("faults") or []:
        if isinstance(fault, dict):
            fault = {**fault, "recovery": _recovery(fault)}
        faults.append(fault)
    data["faults"] = faults
    # Booleans become outcomes through the records' own validators (ok → held/failed, an error → not checked).
    data["schema_version"] = 2
    data["upgraded_from"] = 1
    return data
