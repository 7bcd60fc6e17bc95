"""RPO: acknowledged orders lost per fault, measured on one integrity check — or not measured, and why.

The RPO rests on `acknowledged_found_by_url` when the experiment configures it (a system of the
user's own), else on `acknowledged_orders_persisted`. A count is claimed only when that check
reconciled every acknowledged id: not checked, a sample, or ids it could not check leave every
`rpo_orders` objective "not checked" with the reason, and no `rpo` record is written.
"""

from __future__ import annotations

from engine.integrity_spec import LOOKUP_CHECK
from engine.journal import IntegrityRecord, Journal, LostOrder, ObjectiveRecord, RpoRecord
from engine.model import Experiment

PERSISTED = "acknowledged_orders_persisted"
# An order acknowledged this long before a fault started is still that fault's to lose (in flight).
ATTRIBUTION_S = 2.0


def attribute(journal: Journal, lost: list[LostOrder]) -> None:
    """Each lost order to the latest fault injected no later than ATTRIBUTION_S after its acknowledgement."""
    injected = sorted((f for f in journal.faults if f.injected_at is not None), key=lambda f: f.injected_at or 0)
    for order in lost:
        candidates = [f for f in injected if (f.injected_at or 0) <= order.acked_at + ATTRIBUTION_S]
        order.fault_index = candidates[-1].index if candidates else None


def basis(journal: Journal) -> IntegrityRecord | None:
    """The check the RPO is measured on: the URL lookup when it ran, else acknowledged_orders_persisted."""
    by_name = {r.name: r for r in journal.integrity}
    return by_name.get(LOOKUP_CHECK) or by_name.get(PERSISTED)


def not_measured(record: IntegrityRecord, complete: bool) -> str | None:
    """Why no RPO may be claimed on `record`, or None when it may."""
    if record.status == "not_checked":
        return f"{record.name} was not checked: {record.why or record.error}"
    if not complete:
        return f"{record.name} did not cover every acknowledged id ({record.why}): RPO not measured"
    return None


def judge(
    journal: Journal, experiment: Experiment, lost: list[LostOrder], record: IntegrityRecord, complete: bool = True
) -> None:
    """RPO records and objectives per fault; without a full reconciliation no count is claimed."""
    target = experiment.objectives.rpo_orders
    why = not_measured(record, complete)
    measured = why is None
    groups: list[int | None] = [f.index for f in journal.faults if f.injected_at is not None]
    lookup_unmeasured = not measured and not groups and record.name == LOOKUP_CHECK
    if any(order.fault_index is None for order in lost) or lookup_unmeasured:
        groups.append(None)  # unmeasured with no fault: one record still says why (drill figures read it)
    for index in groups:
        mine = [o for o in lost if o.fault_index == index]
        if measured:  # "0 lost" is a claim: made only when the acknowledgements were reconciled
            journal.rpo.append(
                RpoRecord(
                    fault_index=index,
                    lost=len(mine),
                    first_acked_at=min((o.acked_at for o in mine), default=None),
                    last_acked_at=max((o.acked_at for o in mine), default=None),
                )
            )
        journal.objectives.append(
            ObjectiveRecord(
                name="rpo_orders",
                target=target,
                observed=len(mine) if measured else None,
                unit="orders",
                status=("held" if len(mine) <= target else "failed") if measured else "not_checked",
                why=why or "",
                fault_index=index,
                detail=why or "",
            )
        )


def measured_loss(journal: Journal) -> tuple[int | None, str]:
    """Acknowledged orders lost over the run and '', or None and why they were not counted (drill figures)."""
    record = basis(journal)
    if record is None:
        return None, f"{PERSISTED} did not run"
    if record.status == "not_checked":
        return None, f"{record.name} not checked: {record.why}"
    unmeasured = [o for o in journal.objectives if o.name == "rpo_orders" and o.status == "not_checked"]
    if record.name == LOOKUP_CHECK and unmeasured:
        return None, unmeasured[0].why
    return sum(r.lost for r in journal.rpo), ""
