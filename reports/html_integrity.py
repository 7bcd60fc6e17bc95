"""The HTML report's integrity section and recovery point: what was checked, what held, and what was not checked.

A check that did not run, or had nothing to examine, is "not checked" with its reason — never a
green "holds", never "0 lost". Words follow the stack's declaration (engine.wording).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.journal import IntegrityRecord, Journal, LostOrder, ObjectiveRecord
from engine.wording import for_stack
from reports.formatting import fault_name, plural, utc_iso
from reports.templating import Figure

MAX_LOST_ORDERS = 50  # the journal lists up to 200; the report shows the first few, the journal has the rest
RPO_OBJECTIVE = "rpo_orders"
MARKS = {"good": "✓", "bad": "✗", "warn": "⚠\N{VARIATION SELECTOR-15}"}  # VS15: the sign as text, not emoji


@dataclass(frozen=True)
class Stamp:
    """A time shown as seconds since the run's start, with the absolute UTC time on hover."""

    rel: str
    iso: str


@dataclass(frozen=True)
class InvariantView:
    """One integrity check as a row: tone good (holds), bad (violated) or warn (not checked)."""

    name: str
    description: str
    tone: str
    mark: str
    state: str
    counts: str
    took: str
    error: str
    columns: list[str]
    examples: list[list[str]]
    examples_title: str
    note: str = ""


@dataclass(frozen=True)
class RpoLine:
    """Acknowledged orders lost in one fault (or outside any fault)."""

    fault: str
    lost: int
    first: Stamp | None
    last: Stamp | None


@dataclass(frozen=True)
class RpoView:
    """Acknowledged orders lost over the run, against the rpo_orders objective."""

    lost: str
    headline: str
    tone: str
    lines: list[RpoLine]


UNRECORDED = "—"  # a lost order's field the locustfile did not record: never blank, never 0


@dataclass(frozen=True)
class LostOrderRow:
    order: LostOrder
    account: str
    symbol: str
    side: str
    qty: str
    price: str
    acked: Stamp
    fault: str
    fault_title: str


def _price(value: float) -> str:
    """A price as the journal has it, without float noise or rounding away decimals: 7.8, 35.25."""
    return f"{value:,.8f}".rstrip("0").rstrip(".")


def _cell(example: dict[str, Any], key: str) -> str:
    """One field of an integrity violation: text as is, anything else as JSON, absent as blank, unrecorded as —."""
    if key not in example:
        return ""
    value = example[key]
    if value is None:
        return UNRECORDED
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


class JournalView:
    """Reads one journal: times as stamps, faults by name, the integrity section."""

    def __init__(self, journal: Journal) -> None:
        self.j = journal
        self.t0 = journal.started_at
        self.words = for_stack(journal.stack)

    def stamp(self, t: float | None) -> Stamp | None:
        if t is None:
            return None
        return Stamp(f"{t - self.t0:+.1f}s", utc_iso(t, "milliseconds"))

    def must_stamp(self, t: float) -> Stamp:
        stamp = self.stamp(t)
        assert stamp is not None
        return stamp

    def fault_label(self, index: int | None) -> str:
        """'#1 process.kill matcher' for a fault index; None is the time outside every fault."""
        if index is None:
            return "outside any fault"
        for fault in self.j.faults:
            if fault.index == index:
                return fault_name(fault)
        return f"#{index}"

    # -- recovery point ----------------------------------------------------------------------
    def rpo_objectives(self) -> list[ObjectiveRecord]:
        return [o for o in self.j.objectives if o.name == RPO_OBJECTIVE]

    def unreconciled(self) -> str | None:
        """Why the acknowledged orders were not reconciled, or None when they were."""
        unchecked = [o for o in self.rpo_objectives() if o.status == "not_checked"]
        if unchecked:
            return unchecked[0].why or unchecked[0].detail or "the acknowledgements could not be reconciled"
        return None

    def orders_lost(self) -> int | None:
        """Acknowledged orders lost over the run; None when they were not reconciled (not checked)."""
        if self.j.rpo:
            return sum(r.lost for r in self.j.rpo)
        if self.unreconciled() is not None:
            return None
        observed = [o.observed for o in self.rpo_objectives() if o.observed is not None]
        return int(sum(observed)) if observed else None

    def rpo_target(self) -> tuple[float | None, bool | None]:
        """The rpo_orders objective and whether it was met (None: no objective, or not checked)."""
        objectives = self.rpo_objectives()
        if objectives:
            if any(o.status == "not_checked" for o in objectives):
                return min(o.target for o in objectives), None
            return min(o.target for o in objectives), all(o.status == "held" for o in objectives)
        target = (self.j.experiment.get("objectives") or {}).get(RPO_OBJECTIVE)
        lost = self.orders_lost()
        if not isinstance(target, int | float) or isinstance(target, bool) or lost is None:
            return None, None
        return float(target), lost <= target

    def rpo(self) -> RpoView | None:
        """None when the run judged no recovery point at all (no ledger was compared, no objective)."""
        if not self.j.rpo and not self.rpo_objectives():
            return None
        lost = self.orders_lost()
        target, met = self.rpo_target()
        what = f"Acknowledged {self.words.orders} lost"
        if lost is None:
            headline = f"{what}: not checked — {self.unreconciled() or 'not measured'}"
        else:
            headline = f"{self.words.count(lost, 'acknowledged')} lost"
            headline += " — no objective set" if target is None else f" — objective {target:g}: "
            headline += "" if target is None else ("met" if met else "missed")
        tone = {True: "good", False: "bad", None: "warn" if lost is None else ""}[met]
        lines = [
            RpoLine(self.fault_label(r.fault_index), r.lost, self.stamp(r.first_acked_at), self.stamp(r.last_acked_at))
            for r in self.j.rpo
            if r.lost > 0
        ]
        return RpoView("not checked" if lost is None else f"{lost:,}", headline, tone, lines)

    def rpo_figure(self) -> list[Figure]:
        view = self.rpo()
        if view is None:
            return []
        target, _ = self.rpo_target()
        notes = [] if target is None else [f"objective {target:g}"]
        if self.orders_lost() is None:
            notes.append(self.unreconciled() or "not measured")
        elif self.j.ledger is not None:
            notes.append(f"of {self.j.ledger.acknowledged:,} acknowledged")
        return [Figure(f"{self.words.Orders} lost", view.lost, " · ".join(notes), view.tone)]

    # -- integrity checks --------------------------------------------------------------------
    def invariant(self, record: IntegrityRecord) -> InvariantView:
        checked = f"checked {record.checked:,}"
        if record.status == "not_checked":
            state = "could not run" if record.error else "not checked"
            tone, counts = "warn", checked if record.checked else ""
        elif record.status == "held":
            tone, state, counts = "good", "holds", checked
        else:
            tone, state = "bad", "violated"
            counts = f"{plural(record.violations, 'violation')} · {checked}"
        columns = list(dict.fromkeys(key for example in record.examples for key in example))
        shown = len(record.examples)
        title = f"{plural(shown, 'example')}"
        if record.violations > shown:
            title += f" of {record.violations:,} violations"
        return InvariantView(
            name=record.name,
            description=record.description,
            tone=tone,
            mark=MARKS[tone],
            state=state,
            counts=counts,
            took=f"{record.took_s:.2f} s",
            error=record.error or (record.why if record.status == "not_checked" else ""),
            note="" if record.status == "not_checked" else record.why,  # what a verdict rests on (e.g. a sample)
            columns=columns,
            examples=[[_cell(example, key) for key in columns] for example in record.examples],
            examples_title=title,
        )

    def integrity_note(self) -> str:
        """The line shown when the journal holds no integrity check (older journals, none configured)."""
        phase = self.j.phase("integrity")
        if phase is not None and phase.detail:
            return f"No integrity checks ran: {phase.detail}"
        return "No integrity checks ran."

    def ledger(self) -> tuple[str, str]:
        """'N orders and M cancels acknowledged …' and the ledger files (for the hover title)."""
        ledger = self.j.ledger
        if ledger is None:
            return "", ""
        acknowledged = plural(ledger.acknowledged, self.words.order)
        if self.words.trading or ledger.cancels_acknowledged:
            acknowledged += f" and {plural(ledger.cancels_acknowledged, 'cancel')}"
        text = (
            f"{acknowledged} acknowledged to the load generator, recorded in {plural(len(ledger.files), 'file')}; "
            f"{plural(ledger.unreadable_lines, 'torn line')} skipped"
        )
        return text, "\n".join(ledger.files)

    def lost_orders(self) -> tuple[list[LostOrderRow], int, str]:
        """The first MAX_LOST_ORDERS lost orders, how many more the journal lists, and a note if it lists fewer."""
        listed = self.j.lost_orders
        rows = [
            LostOrderRow(
                o,
                o.account or UNRECORDED,
                o.symbol or UNRECORDED,
                o.side or UNRECORDED,
                UNRECORDED if o.qty is None else f"{o.qty:,}",
                UNRECORDED if o.price is None else _price(o.price),
                self.must_stamp(o.acked_at),
                "none" if o.fault_index is None else f"#{o.fault_index}",
                self.fault_label(o.fault_index),
            )
            for o in listed[:MAX_LOST_ORDERS]
        ]
        lost = sum(r.lost for r in self.j.rpo)
        what = f"lost {self.words.orders}"
        unlisted = f"The journal lists {len(listed):,} of the {lost:,} {what}." if lost > len(listed) else ""
        return rows, max(len(listed) - MAX_LOST_ORDERS, 0), unlisted
