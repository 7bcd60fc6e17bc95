"""The management report of a drill run: one self-contained offline HTML page, the summary first.

Page one says in words whether the drill passed, which objectives were met, how long the service
was out — the worst single experiment's outage, never a span across experiments — and, where the
drill or its stacks declare a trading system, how that compares with the regulatory thresholds (an
outage of 5 minutes or more is a reportable incident, 30 minutes or more a major one), and what it
cost in requests and latency. Claims cover only what was checked: an experiment that reconciled no
acknowledgements is named as not checked. Then the figures per experiment and per fault, the
timeline (reports.drill_details), the load charts of each experiment and the trends over past runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from drilling.record import DrillExperimentRecord, DrillFaultRecord, DrillRecord, HistoryRow
from engine.journal import Journal, Status, load_journal, write_atomic
from engine.wording import Wording, declares_trading
from reports import run_charts
from reports.drill_details import MAJOR_S, REPORTABLE_S, DetailsView, Outage, classify_outage
from reports.formatting import format_duration, plural, utc_iso, verdict
from reports.outcomes import BASIS, DEFINITIONS, MARKS, TONES, outcome_word
from reports.templating import Figure, environment

__all__ = [
    "MAJOR_S",
    "REPORTABLE_S",
    "REPORT_NAME",
    "classify_outage",
    "drill_outage",
    "format_duration",
    "render_management_report",
    "write_management_report",
]

REPORT_NAME = "drill-report.html"
FIGURE_OBJECTIVES = {  # objective name (without _s) → the key figure it judges
    "rto": "RTO",
    "time_to_detect": "Time to detect",
    "time_to_recover": "Time to recover",
}
HEADLINE_NAMES = {"time_to_detect_s": "time to detect", "time_to_recover_s": "time to recover", "rto_s": "RTO"}


def drill_outage(record: DrillRecord, trading: bool = True) -> Outage:
    """The worst single experiment's outage (the longer of its RTO and its time to recover)."""
    if record.outage_s is None:
        return classify_outage(None, "no RTO or time to recover measured", trading)
    number = record.worst.get("outage_s")
    basis = "the longest outage of a single experiment (the longer of its RTO and its time to recover)"
    return classify_outage(record.outage_s, basis + (f": experiment {number}" if number else ""), trading)


@dataclass(frozen=True)
class ObjectiveRow:
    name: str
    target: str
    observed: str
    status: Status | None  # None: no judgement applies (an outage not measured)
    note: str = ""


@dataclass(frozen=True)
class ExperimentView:
    number: int
    record: DrillExperimentRecord
    tone: str
    rto: str
    detect: str
    recover: str
    outage: str
    lost: str
    lost_note: str
    charts: list[Markup]
    note: str


@dataclass(frozen=True)
class FaultRow:
    experiment: int
    fault: DrillFaultRecord
    detected: str
    impact: str
    rto: str
    other: str


def _value(value: float | None, unit: str, missing: str = "not measured") -> str:
    if value is None:
        return missing
    return format_duration(value) if unit == "s" else f"{value:,g} {unit}".strip()


def _resolve(path: str, base: Path | None) -> Path:
    """A journal path from the record: as written (absolute, or relative to the working directory), else under
    `base`, else as a run directory of the runs directory `base` is in (`<runs>/drills/<id>` → `<runs>/<run>/`)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists() or base is None:
        return candidate
    for found in (base / candidate, base.parent.parent / candidate.parent.name / candidate.name):
        if found.exists():
            return found
    return candidate


def _journal(experiment: DrillExperimentRecord, base: Path | None) -> Journal | str:
    if not experiment.journal:
        return "no journal was recorded for this experiment"
    try:
        return load_journal(_resolve(experiment.journal, base))
    except ValueError as exc:
        return str(exc)


def _result(status: Status | None) -> tuple[str, str]:
    """A result cell's tone and words; None: nothing applies (an outage that was not measured)."""
    if status is None:
        return "warn", "? not judged"
    return TONES[status], f"{MARKS[status]} {outcome_word(status, 'met', 'missed')}"


class _View(DetailsView):
    """Formats one drill record (and its experiments' journals) for the template."""

    def __init__(self, record: DrillRecord, history: Sequence[HistoryRow], base: Path | None) -> None:
        journals = {i: _journal(e, base) for i, e in enumerate(record.experiments)}
        super().__init__(record, history, journals, self._trading(record, journals))
        self.words = Wording(self.trading)
        self.outage = drill_outage(record, self.trading)

    @staticmethod
    def _trading(record: DrillRecord, journals: dict[int, Journal | str]) -> bool:
        """The record's declaration; a schema-1 record kept none, so its journals' stacks decide."""
        if not record.upgraded_from:
            return record.trading
        read = [j for j in journals.values() if isinstance(j, Journal)]
        return bool(read) and all(declares_trading(j.stack) for j in read)

    # Page one

    def objectives(self) -> list[ObjectiveRow]:
        rows = []
        for o in self.r.objectives:
            observed = "not checked" if o.status == "not_checked" else _value(o.observed, o.unit)
            note = o.detail if o.status != "not_checked" else (o.why or o.detail)
            name = o.name + ("" if o.fault_index is None else f" (fault #{o.fault_index})")
            rows.append(ObjectiveRow(name, _value(o.target, o.unit), observed, o.status, note))
        if not self.trading:
            return rows  # no regulatory threshold for a system that declares no trading service
        seconds = self.outage.seconds
        for limit, name in ((REPORTABLE_S, "no reportable incident"), (MAJOR_S, "no major incident")):
            status: Status | None = None if seconds is None else ("held" if seconds < limit else "failed")
            rows.append(
                ObjectiveRow(name, f"outage < {limit // 60} min", format_duration(seconds), status, "regulatory")
            )
        return rows

    def lost_claim(self) -> str:
        """What the drill established about lost acknowledgements — only for the experiments that checked."""
        ran = [(i + 1, e) for i, e in enumerate(self.r.experiments) if e.run_id is not None]
        checked = [(n, e) for n, e in ran if e.lost_orders is not None]
        unchecked = [f"experiment {n} ({e.lost_orders_why or 'not checked'})" for n, e in ran if e.lost_orders is None]
        if not checked:
            return f" Acknowledged {self.words.orders} were not checked." if ran else ""
        lost = sum(e.lost_orders or 0 for _, e in checked)
        scope = "" if not unchecked else f" in {'experiment' if len(checked) == 1 else 'experiments'} "
        scope += ", ".join(str(n) for n, _ in checked) if unchecked else ""
        if lost == 0:
            sentence = f" No acknowledged {self.words.order} was lost{scope}."
        else:
            sentence = f" {self.words.count(lost, 'acknowledged')} lost{scope}."
        if unchecked:
            sentence += f" Not checked: {'; '.join(unchecked)}."
        return sentence

    def peak_p99(self) -> tuple[float, str] | None:
        peaks = [(e.peak_p99_ms, e.title or e.file) for e in self.r.experiments if e.peak_p99_ms is not None]
        return max(peaks, key=lambda p: p[0]) if peaks else None

    def verdict_words(self) -> str:
        label, _ = verdict(self.r.verdict)
        judged = self.r.objectives
        missed = [
            f"{o.name} {_value(o.observed, o.unit)} against {_value(o.target, o.unit)}"
            for o in judged
            if o.status == "failed"
        ]
        unchecked = [f"{o.name}: {o.why or 'not measured'}" for o in judged if o.status == "not_checked"]
        if not judged:
            objectives = "no objectives were judged"
        elif missed or unchecked:
            parts = [f"{len(missed)} of {plural(len(judged), 'objective')} missed"]
            parts[0] += f" ({'; '.join(missed)})" if missed else ""
            parts += [f"{len(unchecked)} not checked, so missed ({'; '.join(unchecked)})"] if unchecked else []
            objectives = ", ".join(parts)
        else:
            objectives = f"all {plural(len(judged), 'objective')} met"
        return f"The drill {label.lower()}: {objectives}.{self.lost_claim()}"

    def _worst(self, name: str) -> str:
        number = self.r.worst.get(name)
        return "" if number is None else f" · worst: experiment {number}"

    def figures(self) -> list[Figure]:
        o = self.outage
        figures = [
            Figure("Outage", format_duration(o.seconds), o.basis, o.tone),
            Figure("Time to detect", format_duration(self.r.time_to_detect_s), "its fault → detect step"
                   + self._worst("time_to_detect_s")),
            Figure("Time to recover", format_duration(self.r.time_to_recover_s), "its fault → recover step"
                   + self._worst("time_to_recover_s")),
            Figure("RTO", format_duration(self.r.rto_s), "longest of any single fault" + self._worst("rto_s")),
        ]  # fmt: skip
        lost = self.r.rpo_orders
        partial = any(e.lost_orders is None for e in self.r.experiments if e.run_id is not None)
        tone = "warn" if lost is None else ("bad" if lost > 0 else ("warn" if partial else "good"))
        note = "acknowledged, then lost" + (
            " · not checked in every experiment" if partial and lost is not None else ""
        )
        figures.append(Figure(f"{self.words.Orders} lost", "not checked" if lost is None else f"{lost:,}", note, tone))
        requests = sum(e.requests for e in self.r.experiments)
        failed = sum(e.failed_requests for e in self.r.experiments)
        share = f"{100.0 * failed / requests:.2f} % of {requests:,}" if requests else "no requests recorded"
        figures.append(Figure("Requests failed", f"{failed:,}", share))
        peak = self.peak_p99()
        if peak is not None:
            figures.append(Figure("Peak p99 latency", f"{peak[0]:,.0f} ms", peak[1]))
        return [self.judged(figure) for figure in figures]

    def judged(self, figure: Figure) -> Figure:
        """A key figure coloured and annotated by the objectives that bound it (rto, time_to_detect, ...)."""
        bound = [o for o in self.r.objectives if FIGURE_OBJECTIVES.get(o.name.removesuffix("_s")) == figure.label]
        bound += [o for o in self.r.objectives if o.name == "rpo_orders" and figure.label.endswith(" lost")]
        if not bound:
            return figure
        target = _value(min(o.target for o in bound), bound[0].unit)
        statuses = {o.status for o in bound}
        status: Status = "failed" if "failed" in statuses else ("not_checked" if "not_checked" in statuses else "held")
        # A figure that is itself only partly checked stays amber even when its objective was met.
        tone = figure.tone if status == "held" and figure.tone == "warn" else TONES[status]
        return Figure(figure.label, figure.value, f"objective {target} · {figure.note}", tone)

    def experiments(self) -> list[ExperimentView]:
        views = []
        for i, e in enumerate(self.r.experiments):
            journal = self.journals[i]
            svgs: list[Markup] = []
            note = ""
            if isinstance(journal, Journal):
                # Markup only because charts.py escapes every text it puts into the SVG itself.
                svgs = [
                    Markup(svg)  # noqa: S704
                    for svg in (
                        run_charts.latency_chart(journal),
                        run_charts.throughput_chart(journal),
                        run_charts.error_rate_chart(journal),
                    )
                ]
            else:
                note = f"No charts: {journal}"
            tone = "good" if e.verdict == "passed" else ("warn" if e.verdict in ("pending", "running") else "bad")
            never = e.fault_started_at is None
            views.append(
                ExperimentView(
                    number=i + 1,
                    record=e,
                    tone=tone,
                    rto="no fault" if never else format_duration(e.rto_s),
                    detect=format_duration(e.time_to_detect_s),
                    recover=format_duration(e.time_to_recover_s),
                    outage="no fault" if never else format_duration(e.outage_s),
                    lost="not checked" if e.lost_orders is None else f"{e.lost_orders:,}",
                    lost_note=e.lost_orders_why,
                    charts=svgs,
                    note=note,
                )
            )
        return views

    def fault_rows(self) -> list[FaultRow]:
        rows = []
        for i, e in enumerate(self.r.experiments):
            for f in e.faults:
                other = f.after_end_s if f.rto_from == "fault_start" else f.from_start_s
                other_label = BASIS["fault_end" if f.rto_from == "fault_start" else "fault_start"]
                rows.append(
                    FaultRow(
                        experiment=i + 1,
                        fault=f,
                        detected=_value(f.detected_after_s, "s", "never deviated"),
                        impact=_value(f.impact_s, "s", "not recovered") if f.detected_after_s is not None else "none",
                        rto=f"{_value(f.rto_s, 's', 'not recovered')} ({BASIS[f.rto_from]})",
                        other=f"{_value(other, 's')} {other_label}",
                    )
                )
        return rows

    def context(self) -> dict[str, Any]:
        label, tone = verdict(self.r.verdict)
        duration = None if self.r.finished_at is None else self.r.finished_at - self.t0
        passed = sum(h.verdict == "passed" for h in self.history)
        title = self.r.drill.get("title")
        return {
            "r": self.r,
            "title": title if isinstance(title, str) and title else f"Drill {self.r.drill_name}",
            "verdict_label": label,
            "verdict_tone": tone,
            "verdict_words": self.verdict_words(),
            "outage": self.outage,
            "trading": self.trading,
            "orders_word": self.words.Orders,
            "started": utc_iso(self.t0),
            "duration": "unfinished" if duration is None else format_duration(duration),
            "figures": self.figures(),
            "objectives": self.objectives(),
            "result": _result,
            "steps": self.steps(),
            "timeline": self.timeline(),
            "timeline_chart": self.timeline_chart(),
            "experiments": self.experiments(),
            "fault_rows": self.fault_rows(),
            "definitions": DEFINITIONS,
            "trend_charts": self.trend_charts(),
            "history": self.history_rows(),
            "pass_rate": f"{passed} of {len(self.history)}" if self.history else "",
            "reportable_min": REPORTABLE_S // 60,
            "major_min": MAJOR_S // 60,
        }


def render_management_report(
    record: DrillRecord, history: Sequence[HistoryRow] = (), *, base: Path | None = None
) -> str:
    """The drill report as one HTML document (inline CSS and SVG, nothing fetched when viewed).

    Relative journal paths in the record are looked up as given, then under `base`.
    """
    template = environment().get_template("management.html.j2")
    return template.render(_View(record, history, base).context())


def write_management_report(
    record: DrillRecord, out_dir: Path, history: Sequence[HistoryRow], *, base: Path | None = None
) -> Path:
    """Write `out_dir/drill-report.html` atomically and return its path.

    `history` is the past runs of the same drill, oldest first, including this one. Relative journal
    paths in the record are looked up as given, then under `base` (default: `out_dir`, where drill.json is).
    """
    path = Path(out_dir) / REPORT_NAME
    write_atomic(path, render_management_report(record, history, base=Path(base or out_dir)))
    return path
