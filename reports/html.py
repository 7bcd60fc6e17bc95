"""The HTML report of a run: one self-contained offline file rendered from the journal alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from engine.journal import (
    CheckRecord,
    EventRecord,
    FaultRecord,
    IntegrityRecord,
    Journal,
    LostOrder,
    ObjectiveRecord,
    write_atomic,
)
from injectors.base import TargetResult
from reports import charts
from reports.junit import fault_name

TEMPLATES = Path(__file__).parent / "templates"
MAX_EVENTS = 1000  # an hour-long run may journal many events; the journal keeps them all
MAX_REQUEST_CHARTS = 3
MAX_LOST_ORDERS = 50  # the journal lists up to 200; the report shows the first few, the journal has the rest
RPO_OBJECTIVE = "rpo_orders"
VERDICTS = {
    "passed": ("Passed", "good"),
    "deviated": ("Deviated", "bad"),
    "rollback_failed": ("Rollback failed", "bad"),
    "error": ("Error", "bad"),
    "interrupted": ("Interrupted", "warn"),
    "aborted": ("Aborted", "bad"),
    "running": ("Incomplete", "warn"),
}
_MARKS = {"good": "✓", "bad": "✗", "warn": "⚠\N{VARIATION SELECTOR-15}"}  # VS15: the sign as text, not emoji
_FAULT_TONES = {"rolled_back": "good", "failed": "bad", "rollback_failed": "bad"}
_UNITS = {
    "latency_p50_ms": "ms",
    "latency_p95_ms": "ms",
    "latency_p99_ms": "ms",
    "latency_max_ms": "ms",
    "throughput_rps": "req/s",
}
_OBJECTIVE_UNITS = {"rto": "s", RPO_OBJECTIVE: "orders"}


@dataclass(frozen=True)
class Stamp:
    """A time shown as seconds since the run's start, with the absolute UTC time on hover."""

    rel: str
    iso: str


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    note: str = ""
    tone: str = ""


@dataclass(frozen=True)
class Action:
    action: str
    target: str
    ok: bool
    started: Stamp
    took_ms: str
    detail: str
    error: str


@dataclass(frozen=True)
class FaultView:
    name: str
    record: FaultRecord
    tone: str
    rollback: str
    rto: str
    params: str
    selection: str
    targets: str
    injected: Stamp | None
    ended: Stamp | None
    actions: list[Action]
    degraded: Stamp | None = None
    recovered: Stamp | None = None
    recovery: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class InvariantView:
    """One integrity check as a row: tone good (holds), bad (violated) or warn (could not run)."""

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


@dataclass(frozen=True)
class LostOrderRow:
    order: LostOrder
    qty: str
    price: str
    acked: Stamp
    fault: str
    fault_title: str


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _price(value: float) -> str:
    """A price as the journal has it, without float noise or rounding away decimals: 7.8, 35.25."""
    return f"{value:,.8f}".rstrip("0").rstrip(".")


def _cell(example: dict[str, Any], key: str) -> str:
    """One field of an integrity violation: text as is, anything else as JSON, absent as blank."""
    if key not in example:
        return ""
    value = example[key]
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _format_value(value: float | None, metric: str | None) -> str:
    """A probe's value in its unit; shares (error rate, failed HTTP samples) as percentages."""
    if value is None:
        return "—"
    if metric is None or metric == "error_rate":
        return f"{value * 100:.2f} %"
    unit = _UNITS.get(metric, "")
    return f"{value:,.1f} {unit}".strip()


def _threshold(check: CheckRecord) -> str:
    metric = check.metric if check.kind == "metric" else None
    low, high = check.min, check.max
    if low is not None and high is not None:
        return f"{_format_value(low, metric)} to {_format_value(high, metric)}"
    if high is not None:
        return f"≤ {_format_value(high, metric)}"
    if low is not None:
        return f"≥ {_format_value(low, metric)}"
    return "observed only"


def _undo_summary(fault: FaultRecord) -> str:
    """'rolled back and verified in 750 ms', or what failed."""
    done = [*fault.rollback, *fault.verify]
    if not done:
        return "not injected" if fault.status in ("pending", "skipped") else "no rollback recorded"
    failed = [f"{r.action} {r.id} failed" for r in done if not r.ok]
    if failed:
        return "; ".join(failed)
    took = max(r.finished_at for r in done) - min(r.started_at for r in done)
    verified = "and verified " if fault.verify else "(not verified) "
    return f"rolled back {verified}in {took * 1000:,.0f} ms"


def _details(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in detail.items())


class _View:
    """Formats one journal for the template; every method reads the journal only."""

    def __init__(self, journal: Journal) -> None:
        self.j = journal
        self.t0 = journal.started_at

    def stamp(self, t: float | None) -> Stamp | None:
        if t is None:
            return None
        iso = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return Stamp(f"{t - self.t0:+.1f}s", iso)

    def must_stamp(self, t: float) -> Stamp:
        stamp = self.stamp(t)
        assert stamp is not None
        return stamp

    def rto_objective(self, fault: FaultRecord) -> tuple[float | None, bool | None]:
        for objective in self.j.objectives:
            if objective.name == "rto" and objective.fault_index == fault.index:
                return objective.target, objective.met
        target = (self.j.experiment.get("objectives") or {}).get("rto")
        return (float(target) if isinstance(target, int | float) else None), None

    def fault_figures(self) -> list[Figure]:
        figures: list[Figure] = []
        for fault in self.j.faults:
            recovery = fault.recovery
            target, met = self.rto_objective(fault)
            if recovery is None or fault.status in ("pending", "skipped"):
                value, note = (
                    "—",
                    "not injected" if fault.status in ("pending", "skipped") else "not measured",
                )
            elif recovery.rto_s is None:
                value, note = "not recovered", f"impact {recovery.impact_s} s"
                met = False if met is None and target is not None else met
            else:
                value, note = f"{recovery.rto_s:.1f} s", f"impact {recovery.impact_s} s"
                if met is None and target is not None:
                    met = recovery.rto_s <= target
            if target is not None:
                note = f"objective {target:g} s · {note}"
            tone = "" if met is None else ("good" if met else "bad")
            figures.append(Figure(f"RTO {fault_name(fault)}", value, note, tone))
            figures += [
                Figure(f"{measured_label(key)} {fault_name(fault)}", f"{seconds:.2f} s", "measured by the injector")
                for key, seconds in fault.measured.items()
            ]
        return figures

    def fault_label(self, index: int | None) -> str:
        """'#1 process.kill matcher' for a fault index; None is the time outside every fault."""
        if index is None:
            return "outside any fault"
        for fault in self.j.faults:
            if fault.index == index:
                return fault_name(fault)
        return f"#{index}"

    def rpo_objectives(self) -> list[ObjectiveRecord]:
        return [o for o in self.j.objectives if o.name == RPO_OBJECTIVE]

    def orders_lost(self) -> int | None:
        """Acknowledged orders lost over the run; None when the objective was set but could not be measured."""
        if self.j.rpo:
            return sum(r.lost for r in self.j.rpo)
        observed = [o.observed for o in self.rpo_objectives() if o.observed is not None]
        return int(sum(observed)) if observed else None

    def rpo_target(self) -> tuple[float | None, bool | None]:
        """The rpo_orders objective and whether it was met (None: no objective, or not judged)."""
        objectives = self.rpo_objectives()
        if objectives:
            return min(o.target for o in objectives), all(o.met for o in objectives)
        target = (self.j.experiment.get("objectives") or {}).get(RPO_OBJECTIVE)
        lost = self.orders_lost()
        if not isinstance(target, int | float) or isinstance(target, bool) or lost is None:
            return None, None
        return float(target), lost <= target

    def rpo(self) -> RpoView | None:
        """None when the run did not measure its recovery point (no ledger was compared)."""
        if not self.j.rpo and not self.rpo_objectives():
            return None
        lost = self.orders_lost()
        target, met = self.rpo_target()
        headline = (
            "Acknowledged orders lost: not measured" if lost is None else f"{_plural(lost, 'acknowledged order')} lost"
        )
        if target is None:
            headline += " — no objective set"
        else:
            headline += f" — objective {target:g}: {'met' if met else 'missed'}"
        tone = {True: "good", False: "bad", None: "bad" if lost else ""}[met]
        lines = [
            RpoLine(self.fault_label(r.fault_index), r.lost, self.stamp(r.first_acked_at), self.stamp(r.last_acked_at))
            for r in self.j.rpo
            if r.lost > 0
        ]
        return RpoView("not measured" if lost is None else f"{lost:,}", headline, tone, lines)

    def rpo_figure(self) -> list[Figure]:
        view = self.rpo()
        if view is None:
            return []
        target, _ = self.rpo_target()
        notes = [] if target is None else [f"objective {target:g}"]
        if self.j.ledger is not None:
            notes.append(f"of {self.j.ledger.acknowledged:,} acknowledged")
        return [Figure("Orders lost", view.lost, " · ".join(notes), view.tone)]

    def invariant(self, record: IntegrityRecord) -> InvariantView:
        checked = f"checked {record.checked:,}"
        if record.error is not None:
            tone, state, counts = "warn", "could not run", checked if record.checked else ""
        elif record.ok:
            tone, state, counts = "good", "holds", checked
        else:
            tone, state = "bad", "violated"
            counts = f"{_plural(record.violations, 'violation')} · {checked}"
        columns = list(dict.fromkeys(key for example in record.examples for key in example))
        shown = len(record.examples)
        title = f"{_plural(shown, 'example')}"
        if record.violations > shown:
            title += f" of {record.violations:,} violations"
        return InvariantView(
            name=record.name,
            description=record.description,
            tone=tone,
            mark=_MARKS[tone],
            state=state,
            counts=counts,
            took=f"{record.took_s:.2f} s",
            error=record.error or "",
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
        text = (
            f"{_plural(ledger.acknowledged, 'order')} and {_plural(ledger.cancels_acknowledged, 'cancel')} "
            f"acknowledged to the load generator, recorded in {_plural(len(ledger.files), 'file')}; "
            f"{_plural(ledger.unreadable_lines, 'torn line')} skipped"
        )
        return text, "\n".join(ledger.files)

    def lost_orders(self) -> tuple[list[LostOrderRow], int, str]:
        """The first MAX_LOST_ORDERS lost orders, how many more the journal lists, and a note if it lists fewer."""
        listed = self.j.lost_orders
        rows = [
            LostOrderRow(
                o,
                f"{o.qty:,}",
                _price(o.price),
                self.must_stamp(o.acked_at),
                "none" if o.fault_index is None else f"#{o.fault_index}",
                self.fault_label(o.fault_index),
            )
            for o in listed[:MAX_LOST_ORDERS]
        ]
        lost = sum(r.lost for r in self.j.rpo)
        unlisted = f"The journal lists {len(listed):,} of the {lost:,} lost orders." if lost > len(listed) else ""
        return rows, max(len(listed) - MAX_LOST_ORDERS, 0), unlisted

    def load_figures(self) -> list[Figure]:
        points = self.j.metrics.get("*", [])
        if not points:
            return [Figure("Load", "no data", "no load metrics in the journal")]
        total = sum(p.n for p in points)
        failed = sum(p.fail for p in points)
        figures = []
        p99 = [p for p in points if p.p99 is not None]
        if p99:
            peak = max(p99, key=lambda p: p.p99 or 0.0)
            figures.append(Figure("Peak p99 latency", f"{peak.p99:,.0f} ms", f"at {self.must_stamp(peak.t).rel}"))
        rate = 100.0 * failed / total if total else 0.0
        figures.append(Figure("Error rate", f"{rate:.2f} %", f"{failed:,} of {total:,} requests failed"))
        busy = [p for p in points if p.n]
        if busy:
            worst = max(busy, key=lambda p: p.fail / p.n)
            figures.append(
                Figure(
                    "Worst second",
                    f"{100.0 * worst.fail / worst.n:.1f} %",
                    f"errors at {self.must_stamp(worst.t).rel}",
                )
            )
        span = max(points[-1].t - points[0].t + 1.0, 1.0)
        figures.append(Figure("Throughput", f"{total / span:,.0f} req/s", f"mean over {span:,.0f} s of load"))
        return figures

    def chart_requests(self, requests: Sequence[str] | None) -> list[str]:
        if requests is not None:
            return [r for r in requests if r in self.j.metrics and r != "*"]
        named = [c.request for c in self.j.checks if c.request and c.request in self.j.metrics]
        return list(dict.fromkeys(named))[:MAX_REQUEST_CHARTS]

    def charts(self, requests: Sequence[str] | None) -> list[Markup]:
        # Markup only because charts.py escapes every text it puts into the SVG itself.
        svgs = [charts.latency_chart(self.j, "*")]
        svgs += [charts.latency_chart(self.j, r) for r in self.chart_requests(requests)]
        svgs += [
            charts.throughput_chart(self.j),
            charts.error_rate_chart(self.j),
            charts.steady_chart(self.j),
        ]
        return [Markup(svg) for svg in svgs]  # noqa: S704

    def action(self, result: TargetResult) -> Action:
        return Action(
            result.action,
            result.id,
            result.ok,
            self.must_stamp(result.started_at),
            f"{(result.finished_at - result.started_at) * 1000:,.0f}",
            _details(result.detail),
            result.error or "",
        )

    def fault(self, fault: FaultRecord) -> FaultView:
        pids = {r.id: r.detail.get("pid") for r in fault.inject}
        refs = [t.id for t in fault.plan.targets] if fault.plan else list(pids)
        targets = ", ".join(f"{ref} (pid {pids[ref]})" if pids.get(ref) is not None else ref for ref in refs)
        select = fault.plan.select if fault.plan else None
        selection = _details(select.model_dump(exclude_defaults=True)) if select else ""
        recovery: list[tuple[str, str]] = []
        rec = fault.recovery
        if rec is not None:
            recovery = [
                ("RTO", "not recovered" if rec.rto_s is None else f"{rec.rto_s:.1f} s"),
                ("Impact", f"{rec.impact_s} s without steady state"),
            ]
            if rec.detail:
                recovery.append(("Note", rec.detail))
        recovery += [(measured_label(key), f"{seconds:.2f} s") for key, seconds in fault.measured.items()]
        return FaultView(
            name=fault_name(fault),
            record=fault,
            tone=_FAULT_TONES.get(fault.status, "warn"),
            rollback=_undo_summary(fault),
            rto="—" if rec is None else ("not recovered" if rec.rto_s is None else f"{rec.rto_s:.1f} s"),
            params=_details(fault.params),
            selection=selection,
            targets=targets,
            injected=self.stamp(fault.injected_at),
            ended=self.stamp(fault.ended_at),
            actions=[self.action(r) for r in (*fault.inject, *fault.rollback, *fault.verify)],
            degraded=self.stamp(rec.degraded_at) if rec else None,
            recovered=self.stamp(rec.recovered_at) if rec else None,
            recovery=recovery,
        )

    def objectives_note(self) -> str:
        """Why the objectives table is empty: none set, or none measured because nothing was injected."""
        wanted = {k: v for k, v in (self.j.experiment.get("objectives") or {}).items() if v is not None}
        if not wanted:
            return "No objectives were set for this run."
        listed = ", ".join(
            f"{k} {v:g} {_OBJECTIVE_UNITS.get(k, 's')}" if isinstance(v, int | float) else f"{k} {v}"
            for k, v in wanted.items()
        )
        return f"Objectives ({listed}) were set but not measured: no fault took effect."

    def events(self) -> tuple[list[EventRecord], int]:
        events = self.j.events
        if len(events) <= MAX_EVENTS:
            return events, 0
        half = MAX_EVENTS // 2
        return [*events[:half], *events[-half:]], len(events) - MAX_EVENTS

    def context(self, requests: Sequence[str] | None) -> dict[str, Any]:
        events, hidden = self.events()
        label, tone = VERDICTS.get(self.j.verdict, (self.j.verdict, "warn"))
        ledger, ledger_files = self.ledger()
        lost_orders, lost_more, lost_unlisted = self.lost_orders()
        return {
            "j": self.j,
            "verdict_label": label,
            "verdict_tone": tone,
            "started": self.must_stamp(self.t0),
            "finished": self.stamp(self.j.finished_at),
            "duration": f"{(self.j.finished_at - self.t0):,.1f} s" if self.j.finished_at else "unfinished",
            "integrity": [self.invariant(r) for r in self.j.integrity],
            "integrity_note": self.integrity_note(),
            "ledger": ledger,
            "ledger_files": ledger_files,
            "rpo": self.rpo(),
            "lost_orders": lost_orders,
            "lost_more": lost_more,
            "lost_unlisted": lost_unlisted,
            "fault_figures": self.fault_figures() + self.rpo_figure(),
            "load_figures": self.load_figures(),
            "charts": self.charts(requests),
            "faults": [self.fault(f) for f in self.j.faults],
            "objectives_note": self.objectives_note(),
            "events": events,
            "hidden_events": hidden,
            "stamp": self.stamp,
            "threshold": _threshold,
            "value": lambda c: _format_value(c.observed, c.metric if c.kind == "metric" else None),
            "details": _details,
        }


def measured_label(key: str) -> str:
    """`promoted_after_s` → "Promoted after": how a measured time is labelled in reports."""
    return key.removesuffix("_s").replace("_", " ").capitalize()


@cache
def environment() -> Environment:
    """Autoescaping, strict Jinja environment over reports/templates."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(journal: Journal, *, requests: Sequence[str] | None = None) -> str:
    """The report as one HTML document with inline CSS and SVG charts; nothing is fetched when viewed.

    `requests` chooses the request names that get their own latency chart; by default those named by
    the hypothesis (at most three).
    """
    template = environment().get_template("report.html.j2")
    return template.render(_View(journal).context(requests))


def write_html(journal: Journal, path: Path, *, requests: Sequence[str] | None = None) -> Path:
    """Write the HTML report atomically to `path` and return it."""
    write_atomic(path, render_html(journal, requests=requests))
    return path
