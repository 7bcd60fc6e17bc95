"""The HTML report of a run: one self-contained offline file rendered from the journal alone."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from engine.journal import (
    CheckRecord,
    EventRecord,
    FaultRecord,
    Journal,
    Status,
    TargetResult,
    write_atomic,
)
from reports import run_charts
from reports.formatting import fault_name, measured_label, seconds, verdict
from reports.html_integrity import MAX_LOST_ORDERS, JournalView, Stamp
from reports.outcomes import BASIS, DEFINITIONS, MARKS, TONES, other_basis, outcome_word, recovery_lines, rto_text
from reports.templating import Figure, environment

__all__ = ["MAX_LOST_ORDERS", "Figure", "Stamp", "environment", "measured_label", "render_html", "write_html"]

MAX_EVENTS = 1000  # an hour-long run may journal many events; the journal keeps them all
MAX_REQUEST_CHARTS = 3
_FAULT_TONES = {"rolled_back": "good", "failed": "bad", "rollback_failed": "bad"}
_UNITS = {
    "latency_p50_ms": "ms",
    "latency_p95_ms": "ms",
    "latency_p99_ms": "ms",
    "latency_max_ms": "ms",
    "throughput_rps": "req/s",
}
_OBJECTIVE_UNITS = {"rto": "s", "rpo_orders": "orders"}


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
    degraded_note: str = ""
    recovered: Stamp | None = None
    recovered_note: str = ""
    recovery: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """A result cell: tone, mark and words, and why when nothing was checked."""

    tone: str
    text: str
    why: str = ""


def outcome(status: Status, held: str, failed: str, why: str = "") -> Outcome:
    return Outcome(TONES[status], f"{MARKS[status]} {outcome_word(status, held, failed)}", why)


def _format_value(value: float | None, metric: str | None) -> str:
    """A probe's value in its unit; shares (error rate, failed HTTP samples) as percentages."""
    if value is None:
        return "—"
    if metric is None or metric == "error_rate":
        return f"{value * 100:.2f} %"
    unit = _UNITS.get(metric, "")
    return f"{value:,.1f} {unit}".strip()


def _check_value(check: CheckRecord, value: float | None) -> str:
    """A value of a check: a PromQL result as it is, the others in their unit (see _format_value)."""
    if check.kind == "prometheus":
        return "—" if value is None else f"{value:,.6g}"
    return _format_value(value, check.metric if check.kind == "metric" else None)


def _threshold(check: CheckRecord) -> str:
    low, high = check.min, check.max
    if low is not None and high is not None:
        return f"{_check_value(check, low)} to {_check_value(check, high)}"
    if high is not None:
        return f"≤ {_check_value(check, high)}"
    if low is not None:
        return f"≥ {_check_value(check, low)}"
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


class _View(JournalView):
    """Formats one journal for the template; every method reads the journal only."""

    def rto_objective(self, fault: FaultRecord) -> tuple[float | None, Status | None]:
        for objective in self.j.objectives:
            if objective.name == "rto" and objective.fault_index == fault.index:
                return objective.target, objective.status
        target = (self.j.experiment.get("objectives") or {}).get("rto")
        return (float(target) if isinstance(target, int | float) else None), None

    def fault_figures(self) -> list[Figure]:
        figures: list[Figure] = []
        for fault in self.j.faults:
            rec = fault.recovery
            target, status = self.rto_objective(fault)
            name = fault_name(fault)
            if rec is None or fault.status in ("pending", "skipped"):
                note = "not injected" if fault.status in ("pending", "skipped") else "not measured"
                figures.append(Figure(f"RTO {name}", "—", note))
                continue
            if status is None and target is not None:
                status = "held" if rec.rto_s is not None and rec.rto_s <= target else "failed"
            note = BASIS[rec.rto_from] + (f" · objective {target:g} s" if target is not None else "")
            tone = "" if status is None else TONES[status]
            label, value = other_basis(rec)
            impact = seconds(rec.impact_s, "not recovered")
            impact = "no visible impact" if rec.degraded_at is None else f"impact {impact}"
            figures += [Figure(f"RTO {name}", rto_text(rec), note, tone), Figure(f"{label} {name}", value, impact)]
            figures += [
                Figure(f"{measured_label(key)} {name}", f"{value:.2f} s", "measured by the injector")
                for key, value in fault.measured.items()
            ]
        return figures

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
            second = f"in the second {self.must_stamp(peak.t).rel} to {self.must_stamp(peak.t + 1).rel}"
            figures.append(Figure("Peak p99 latency", f"{peak.p99:,.0f} ms", second))
        rate = 100.0 * failed / total if total else 0.0
        figures.append(Figure("Error rate", f"{rate:.2f} %", f"{failed:,} of {total:,} requests failed"))
        busy = [p for p in points if p.n]
        if busy:
            worst = max(busy, key=lambda p: p.fail / p.n)
            at = f"{self.must_stamp(worst.t).rel} to {self.must_stamp(worst.t + 1).rel}"
            figures.append(Figure("Worst second", f"{100.0 * worst.fail / worst.n:.1f} %", f"errors {at}"))
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
        svgs = [run_charts.latency_chart(self.j, "*")]
        svgs += [run_charts.latency_chart(self.j, r) for r in self.chart_requests(requests)]
        svgs += [
            run_charts.throughput_chart(self.j),
            run_charts.error_rate_chart(self.j),
            *run_charts.probe_charts(self.j),
            run_charts.steady_chart(self.j),
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
        rec = fault.recovery
        recovery = recovery_lines(rec) if rec is not None else []
        recovery += [(measured_label(key), f"{value:.2f} s") for key, value in fault.measured.items()]
        degraded_note = recovered_note = ""
        if rec is not None and rec.degraded_straddles:
            degraded_note = "in the whole second that holds the injection: part of it came before the fault"
        if rec is not None and rec.recovered_in_window:
            recovered_note = "while the fault was still in place: every in-window tolerance held until it ended"
        return FaultView(
            name=fault_name(fault),
            record=fault,
            tone=_FAULT_TONES.get(fault.status, "warn"),
            rollback=_undo_summary(fault),
            rto=rto_text(rec) + ("" if rec is None else f" ({BASIS[rec.rto_from]})"),
            params=_details(fault.params),
            selection=selection,
            targets=targets,
            injected=self.stamp(fault.injected_at),
            ended=self.stamp(fault.ended_at),
            actions=[self.action(r) for r in (*fault.inject, *fault.rollback, *fault.verify)],
            degraded=self.stamp(rec.degraded_at) if rec else None,
            degraded_note=degraded_note,
            recovered=self.stamp(rec.recovered_at) if rec else None,
            recovered_note=recovered_note,
            recovery=recovery,
        )

    def objectives_note(self) -> str:
        """Why the objectives table is empty: none set, or none measured because nothing was injected."""
        wanted = {k: v for k, v in (self.j.experiment.get("objectives") or {}).items() if v is not None}
        wanted.pop("rto_from", None)  # how rto is measured, not an objective of its own
        if not wanted:
            return "No objectives were set for this run."
        listed = ", ".join(
            f"{k} {v:g} {_OBJECTIVE_UNITS.get(k, 's')}" if isinstance(v, int | float) else f"{k} {v}"
            for k, v in wanted.items()
        )
        return f"Objectives ({listed}) were set but not measured: no fault took effect."

    def observed_only(self) -> list[str]:
        """Entries without `during:`: no window check, their own thresholds second by second (docs/recovery.md)."""
        entries = self.j.experiment.get("steady_state") or []
        if not any(f.injected_at is not None for f in self.j.faults):
            return []
        return [str(e.get("name")) for e in entries if isinstance(e, dict) and e.get("during") is None]

    def events(self) -> tuple[list[EventRecord], int]:
        events = self.j.events
        if len(events) <= MAX_EVENTS:
            return events, 0
        half = MAX_EVENTS // 2
        return [*events[:half], *events[-half:]], len(events) - MAX_EVENTS

    def context(self, requests: Sequence[str] | None) -> dict[str, Any]:
        events, hidden = self.events()
        label, tone = verdict(self.j.verdict)
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
            "lost_title": f"Lost {self.words.orders}",
            "order_word": self.words.order,
            "fault_figures": self.fault_figures() + self.rpo_figure(),
            "load_figures": self.load_figures(),
            "charts": self.charts(requests),
            "faults": [self.fault(f) for f in self.j.faults],
            "objectives_note": self.objectives_note(),
            "observed_only": self.observed_only(),
            "definitions": DEFINITIONS,
            "events": events,
            "hidden_events": hidden,
            "stamp": self.stamp,
            "threshold": _threshold,
            "value": lambda c: _check_value(c, c.observed),
            "check_outcome": lambda c: outcome(c.status, "held", "deviated", c.why),
            "objective_outcome": lambda o: outcome(o.status, "met", "missed", o.why),
            "details": _details,
        }


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
