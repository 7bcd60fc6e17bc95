"""The management report of a drill run: one self-contained offline HTML page, the summary first.

Page one says in words whether the drill passed, which objectives were met, how long trading was
out against the regulatory thresholds (an outage of 5 minutes or more is a reportable incident,
30 minutes or more a major one) and what it cost in orders and latency. Then the timeline (faults,
runbook steps expected vs actual, detection), the load charts of each experiment (from its journal,
drawn by reports.charts) and the trends over the drill's past runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from engine.drill.record import DrillExperimentRecord, DrillRecord, HistoryRow, StepRecord
from engine.journal import Journal, load_journal, write_atomic
from reports import charts
from reports.html import Figure, environment

REPORT_NAME = "drill-report.html"
REPORTABLE_S = 5 * 60  # an outage this long of a broker's trading system is a reportable incident
MAJOR_S = 30 * 60  # ... and this long a major incident
VERDICTS = {
    "passed": ("Passed", "good"),
    "failed": ("Failed", "bad"),
    "aborted": ("Aborted", "bad"),
    "error": ("Error", "bad"),
    "interrupted": ("Interrupted", "warn"),
    "running": ("Incomplete", "warn"),
}
STEP_TONES = {"done": "good", "late": "warn", "missed": "bad", "skipped": "warn", "pending": "warn"}
STEP_COLORS = {"done": charts.OK_FILL, "late": "#e07b00", "missed": charts.BAD_FILL, "skipped": "#9aa5b1"}
EXPERIMENT_COLOR = "#1f77b4"
FIGURE_OBJECTIVES = {  # objective name (without _s) → the key figure it judges
    "rto": "RTO",
    "time_to_detect": "Time to detect",
    "time_to_recover": "Time to recover",
    "rpo_orders": "Orders lost",
}


def format_duration(seconds: float | None) -> str:
    """'45 s', '6 min 05 s', '1 h 02 min'; an em dash when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    s = round(seconds)
    minutes, rest = divmod(s, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(frozen=True)
class Outage:
    """How long trading was out, and what that is under the reporting rules."""

    seconds: float | None
    level: str  # "none", "reportable", "major", "unknown"
    tone: str
    words: str
    basis: str


def classify_outage(seconds: float | None, basis: str = "") -> Outage:
    """Place an outage against the 5-minute (reportable) and 30-minute (major) thresholds."""
    if seconds is None:
        words = "Outage not measured: a reportable incident cannot be ruled out"
        return Outage(None, "unknown", "warn", words, basis)
    shown = format_duration(seconds)
    if seconds >= MAJOR_S:
        return Outage(seconds, "major", "bad", f"Outage of {shown}: a major incident (30 minutes or more)", basis)
    if seconds >= REPORTABLE_S:
        words = f"Outage of {shown}: a reportable incident (5 minutes or more)"
        return Outage(seconds, "reportable", "bad", words, basis)
    return Outage(seconds, "none", "good", f"Outage of {shown}: below the 5-minute reportable threshold", basis)


def drill_outage(record: DrillRecord) -> Outage:
    """The longer of the measured RTO and the runbook's time to recover: what a regulator would count."""
    known = {"RTO": record.rto_s, "time to recover": record.time_to_recover_s}
    measured = {name: value for name, value in known.items() if value is not None}
    if not measured:
        return classify_outage(None, "no RTO or time to recover measured")
    name, value = max(measured.items(), key=lambda item: item[1])
    return classify_outage(value, "longer of RTO and time to recover" if len(measured) > 1 else name)


@dataclass(frozen=True)
class ObjectiveRow:
    name: str
    target: str
    observed: str
    met: bool | None
    note: str = ""


@dataclass(frozen=True)
class TimelineRow:
    t: float
    at: str
    iso: str
    kind: str
    what: str
    expected: str = ""
    actual: str = ""
    status: str = ""
    tone: str = ""


@dataclass(frozen=True)
class StepRow:
    step: StepRecord
    due: str
    done: str
    expected: str
    actual: str
    delta: str
    tone: str


@dataclass(frozen=True)
class ExperimentView:
    record: DrillExperimentRecord
    tone: str
    rto: str
    charts: list[Markup]
    note: str


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    return format_duration(value) if unit == "s" else f"{value:,g} {unit}".strip()


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


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


class _View:
    """Formats one drill record (and its experiments' journals) for the template."""

    def __init__(self, record: DrillRecord, history: Sequence[HistoryRow], base: Path | None) -> None:
        self.r = record
        self.t0 = record.started_at
        self.history = list(history)
        self.base = base
        self.outage = drill_outage(record)
        self.journals: dict[int, Journal | str] = {i: self._journal(e) for i, e in enumerate(record.experiments)}

    def _journal(self, experiment: DrillExperimentRecord) -> Journal | str:
        if not experiment.journal:
            return "no journal was recorded for this experiment"
        try:
            return load_journal(_resolve(experiment.journal, self.base))
        except ValueError as exc:
            return str(exc)

    def rel(self, t: float | None) -> str:
        if t is None:
            return "—"
        seconds = t - self.t0
        return f"{'-' if seconds < 0 else '+'}{charts.format_offset(abs(seconds))}"

    # Page one

    def objectives(self) -> list[ObjectiveRow]:
        rows = [
            ObjectiveRow(
                o.name + ("" if o.fault_index is None else f" (fault #{o.fault_index})"),
                _value(o.target, o.unit),
                _value(o.observed, o.unit),
                o.met,
                o.detail,
            )
            for o in self.r.objectives
        ]
        seconds = self.outage.seconds
        for limit, name in ((REPORTABLE_S, "no reportable incident"), (MAJOR_S, "no major incident")):
            met = None if seconds is None else seconds < limit
            rows.append(ObjectiveRow(name, f"outage < {limit // 60} min", format_duration(seconds), met, "regulatory"))
        return rows

    def lost_orders(self) -> int | None:
        if self.r.rpo_orders is not None:
            return self.r.rpo_orders
        return sum(e.lost_orders for e in self.r.experiments) if self.r.experiments else None

    def peak_p99(self) -> tuple[float, str] | None:
        peaks = [(e.peak_p99_ms, e.title or e.file) for e in self.r.experiments if e.peak_p99_ms is not None]
        return max(peaks, key=lambda p: p[0]) if peaks else None

    def verdict_words(self) -> str:
        label, _ = VERDICTS.get(self.r.verdict, (self.r.verdict, "warn"))
        judged = self.r.objectives
        missed = [
            f"{o.name} {_value(o.observed, o.unit)} against {_value(o.target, o.unit)}" for o in judged if not o.met
        ]
        if not judged:
            objectives = "no objectives were judged"
        elif missed:
            objectives = f"{len(missed)} of {_plural(len(judged), 'objective')} missed ({'; '.join(missed)})"
        else:
            objectives = f"all {_plural(len(judged), 'objective')} met"
        sentence = f"The drill {label.lower()}: {objectives}."
        lost = self.lost_orders()
        if lost is not None:
            sentence += (
                " No acknowledged order was lost." if lost == 0 else f" {_plural(lost, 'acknowledged order')} lost."
            )
        return sentence

    def figures(self) -> list[Figure]:
        o = self.outage
        figures = [
            Figure("Outage", format_duration(o.seconds), o.basis, o.tone),
            Figure("Time to detect", format_duration(self.r.time_to_detect_s), "first fault → detect step"),
            Figure("Time to recover", format_duration(self.r.time_to_recover_s), "first fault → recover step"),
            Figure("RTO", format_duration(self.r.rto_s), "first fault → steady state again"),
        ]
        lost = self.lost_orders()
        figures.append(
            Figure(
                "Orders lost",
                "not measured" if lost is None else f"{lost:,}",
                "acknowledged, then lost",
                "" if lost is None else ("good" if lost == 0 else "bad"),
            )
        )
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
        if not bound:
            return figure
        target = _value(min(o.target for o in bound), bound[0].unit)
        tone = "good" if all(o.met for o in bound) else "bad"
        return Figure(figure.label, figure.value, f"objective {target} · {figure.note}", tone)

    # The timeline

    def steps(self) -> list[StepRow]:
        rows = []
        for s in self.r.steps:
            delta = ""
            if s.expected_s is not None and s.took_s is not None:
                over = s.took_s - s.expected_s
                delta = f"{format_duration(abs(over))} {'late' if over > 0 else 'early'}" if abs(over) >= 0.5 else ""
            rows.append(
                StepRow(
                    s,
                    self.rel(s.due_at),
                    self.rel(s.done_at),
                    format_duration(s.expected_s),
                    format_duration(s.took_s),
                    delta,
                    STEP_TONES.get(s.status, ""),
                )
            )
        return rows

    def entry(self, t: float, kind: str, what: str, **more: str) -> TimelineRow:
        return TimelineRow(t, self.rel(t), _iso(t), kind, what, **more)

    def experiment_entries(self, e: DrillExperimentRecord, journal: Journal | str) -> list[TimelineRow]:
        """The experiment's start and end and, from its journal, each fault's injection and end."""
        name = e.title or e.file
        rows = [] if e.started_at is None else [self.entry(e.started_at, "experiment", name)]
        if isinstance(journal, Journal):
            for f in journal.faults:
                label = f"#{f.index} {f.kind} on {f.target}" + (f" ({f.name})" if f.name else "")
                if f.injected_at is not None:
                    planned = "" if f.duration_s is None else format_duration(f.duration_s)
                    rows.append(self.entry(f.injected_at, "fault", f"{label} injected", expected=planned))
                if f.ended_at is not None:
                    tone = "good" if f.status == "rolled_back" else "bad"
                    status = f.status.replace("_", " ")
                    rows.append(self.entry(f.ended_at, "fault", f"{label} ended", status=status, tone=tone))
        elif e.fault_started_at is not None:
            rows.append(self.entry(e.fault_started_at, "fault", f"first fault of {name}"))
        if e.finished_at is not None:
            tone = "good" if e.verdict == "passed" else "bad"
            rows.append(self.entry(e.finished_at, "experiment", f"{name} finished", status=e.verdict, tone=tone))
        return rows

    def timeline(self) -> list[TimelineRow]:
        """Everything with a time, in order: the drill, its experiments and faults, the runbook steps done."""
        rows = [self.entry(self.t0, "drill", "drill started")]
        for i, e in enumerate(self.r.experiments):
            rows += self.experiment_entries(e, self.journals[i])
        for s in self.r.steps:
            if s.done_at is not None:
                rows.append(
                    self.entry(
                        s.done_at,
                        {"detect": "detection", "recover": "recovery"}.get(s.marks, "runbook"),
                        s.title + (f" — {s.by}" if s.by else ""),
                        expected=format_duration(s.expected_s),
                        actual=format_duration(s.took_s),
                        status=s.status,
                        tone=STEP_TONES.get(s.status, ""),
                    )
                )
        if self.r.finished_at is not None:
            label, tone = VERDICTS.get(self.r.verdict, (self.r.verdict, "warn"))
            rows.append(self.entry(self.r.finished_at, "drill", "drill finished", status=label, tone=tone))
        return sorted(rows, key=lambda row: row.t)

    def fault_bands(self) -> list[charts.Band]:
        bands = []
        for journal in self.journals.values():
            if isinstance(journal, Journal):
                bands += [
                    charts.Band(b.start + journal.started_at - self.t0, b.end + journal.started_at - self.t0, b.label)
                    for b in charts.fault_bands(journal)
                ]
        return bands

    def timeline_chart(self) -> Markup:
        spans = []
        end = (self.r.finished_at or self.t0) - self.t0
        for e in self.r.experiments:
            if e.started_at is not None:
                stop = (e.finished_at or self.r.finished_at or e.started_at) - self.t0
                spans.append(charts.Span(e.title or e.file, e.started_at - self.t0, stop, EXPERIMENT_COLOR, e.verdict))
        for s in self.r.steps:
            if s.due_at is None:
                continue
            stop = (s.done_at if s.done_at is not None else (self.r.finished_at or s.due_at)) - self.t0
            expected = None if s.expected_s is None else s.due_at - self.t0 + s.expected_s
            label = f"{s.status}, took {format_duration(s.took_s)} (expected {format_duration(s.expected_s)})"
            color = STEP_COLORS.get(s.status, "#9aa5b1")
            spans.append(charts.Span(s.title, s.due_at - self.t0, stop, color, label, expected))
            end = max(end, stop, expected or 0.0)
        legend = [("experiment", EXPERIMENT_COLOR), ("step on time", charts.OK_FILL), ("late", STEP_COLORS["late"])]
        legend.append(("missed", charts.BAD_FILL))
        svg = charts.timeline_chart(
            "Drill timeline: experiments and runbook steps (dashed tick: expected)",
            spans,
            x_max=end,
            bands=self.fault_bands(),
            legend=legend,
        )
        return Markup(svg)  # noqa: S704 — charts.py escapes every text it writes

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
                        charts.latency_chart(journal),
                        charts.throughput_chart(journal),
                        charts.error_rate_chart(journal),
                    )
                ]
            else:
                note = f"No charts: {journal}"
            tone = "good" if e.verdict == "passed" else ("warn" if e.verdict in ("pending", "running") else "bad")
            views.append(ExperimentView(e, tone, format_duration(e.rto_s), svgs, note))
        return views

    # Trends

    def trend_charts(self) -> list[Markup]:
        rows = self.history
        if len(rows) < 2:
            return []
        years = {datetime.fromtimestamp(h.started_at, UTC).year for h in rows}
        day = "%d %b" if len(years) == 1 else "%d %b %y"
        labels = [datetime.fromtimestamp(h.started_at, UTC).strftime(day) for h in rows]
        if len(set(labels)) < len(labels):  # several runs a day: tell them apart by the time
            labels = [datetime.fromtimestamp(h.started_at, UTC).strftime(day + " %H:%M") for h in rows]
        times = [
            charts.Series("RTO", [(i, h.rto_s) for i, h in enumerate(rows)], "#7b2cbf"),
            charts.Series("time to detect", [(i, h.time_to_detect_s) for i, h in enumerate(rows)], "#1f77b4"),
            charts.Series("time to recover", [(i, h.time_to_recover_s) for i, h in enumerate(rows)], "#e07b00"),
        ]
        peak = max((v for s in times for _, v in s.points if v is not None), default=0.0)
        # A threshold line is drawn once the values come within half of it: a line far above them would
        # set the scale and flatten seconds-long recoveries into the axis.
        regulatory = [
            charts.Threshold(REPORTABLE_S, "reportable incident (5 min)", "#e07b00"),
            charts.Threshold(MAJOR_S, "major incident (30 min)"),
        ]
        limits = [line for line in regulatory if peak >= line.value / 2]
        rto_targets = [o.target for o in self.r.objectives if o.name == "rto"]
        if rto_targets:
            limits.append(
                charts.Threshold(min(rto_targets), f"RTO objective {format_duration(min(rto_targets))}", "#1b7f3b")
            )
        passed = 0
        rate: list[charts.Point] = []
        met: list[charts.Point] = []
        for i, h in enumerate(rows):
            passed += h.verdict == "passed"
            rate.append((i, 100.0 * passed / (i + 1)))
            met.append((i, 100.0 * h.objectives_met / h.objectives_total if h.objectives_total else None))
        svgs = [
            charts.trend_chart(
                "RTO, detection and recovery over past runs", labels, times, unit="s", thresholds=limits
            ),
            charts.trend_chart(
                "Pass rate over past runs",
                labels,
                [
                    charts.Series("pass rate, cumulative", rate, charts.OK_FILL),
                    charts.Series("objectives met", met, "#1f77b4"),
                ],
                unit="%",
                y_max=100.0,
            ),
        ]
        return [Markup(svg) for svg in svgs]  # noqa: S704

    def history_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "row": h,
                "started": _iso(h.started_at),
                "current": h.drill_run_id == self.r.drill_run_id,
                "tone": VERDICTS.get(h.verdict, (h.verdict, "warn"))[1],
                "rto": format_duration(h.rto_s),
                "ttd": format_duration(h.time_to_detect_s),
                "ttr": format_duration(h.time_to_recover_s),
                "outage": classify_outage(
                    max((v for v in (h.rto_s, h.time_to_recover_s) if v is not None), default=None)
                ),
            }
            for h in self.history
        ]

    def context(self) -> dict[str, Any]:
        label, tone = VERDICTS.get(self.r.verdict, (self.r.verdict, "warn"))
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
            "started": _iso(self.t0),
            "duration": "unfinished" if duration is None else format_duration(duration),
            "figures": self.figures(),
            "objectives": self.objectives(),
            "steps": self.steps(),
            "timeline": self.timeline(),
            "timeline_chart": self.timeline_chart(),
            "experiments": self.experiments(),
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
