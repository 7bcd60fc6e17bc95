"""The drill report's details: outage classification, the runbook and timeline, and the trends over past runs.

The regulatory thresholds (CSRC: an outage of a broker's trading system of 5 minutes or more is a
reportable incident, 30 minutes or more a major one) are applied only where the drill or its
stacks declare a trading system (engine.wording); elsewhere an outage is only measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from drilling.record import DrillExperimentRecord, DrillRecord, HistoryRow, StepRecord
from engine.journal import Journal
from reports import charts, drill_charts, run_charts
from reports.formatting import format_duration, signed_offset, utc_iso, verdict

REPORTABLE_S = 5 * 60  # an outage this long of a broker's trading system is a reportable incident
MAJOR_S = 30 * 60  # ... and this long a major incident
STEP_TONES = {"done": "good", "late": "warn", "missed": "bad", "skipped": "warn", "pending": "warn"}
STEP_COLORS = {"done": charts.OK_FILL, "late": "#e07b00", "missed": charts.BAD_FILL, "skipped": "#9aa5b1"}
EXPERIMENT_COLOR = "#1f77b4"


@dataclass(frozen=True)
class Outage:
    """How long the service was out, and — for a trading system — what that is under the reporting rules."""

    seconds: float | None
    level: str  # "none", "reportable", "major", "unknown"; "unclassified" without a trading declaration
    tone: str
    words: str
    basis: str


def classify_outage(seconds: float | None, basis: str = "", trading: bool = True) -> Outage:
    """Place an outage against the 5-minute (reportable) and 30-minute (major) thresholds of a trading system."""
    if seconds is None:
        cannot = ": a reportable incident cannot be ruled out" if trading else ""
        return Outage(None, "unknown", "warn", f"Outage not measured{cannot}", basis)
    shown = format_duration(seconds)
    if not trading:  # no regulatory threshold applies to a system that declares no trading service
        return Outage(seconds, "unclassified", "", f"Outage of {shown}", basis)
    if seconds >= MAJOR_S:
        return Outage(seconds, "major", "bad", f"Outage of {shown}: a major incident (30 minutes or more)", basis)
    if seconds >= REPORTABLE_S:
        words = f"Outage of {shown}: a reportable incident (5 minutes or more)"
        return Outage(seconds, "reportable", "bad", words, basis)
    return Outage(seconds, "none", "good", f"Outage of {shown}: below the 5-minute reportable threshold", basis)


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


class DetailsView:
    """The runbook, the timeline and the trends of one drill record (and its experiments' journals)."""

    def __init__(
        self, record: DrillRecord, history: Sequence[HistoryRow], journals: dict[int, Journal | str], trading: bool
    ) -> None:
        self.r = record
        self.t0 = record.started_at
        self.history = list(history)
        self.journals = journals
        self.trading = trading

    def rel(self, t: float | None) -> str:
        return "—" if t is None else signed_offset(t - self.t0)

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
        return TimelineRow(t, self.rel(t), utc_iso(t), kind, what, **more)

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
            label, tone = verdict(self.r.verdict)
            rows.append(self.entry(self.r.finished_at, "drill", "drill finished", status=label, tone=tone))
        return sorted(rows, key=lambda row: row.t)

    def fault_bands(self) -> list[charts.Band]:
        bands = []
        for journal in self.journals.values():
            if isinstance(journal, Journal):
                bands += [
                    charts.Band(b.start + journal.started_at - self.t0, b.end + journal.started_at - self.t0, b.label)
                    for b in run_charts.fault_bands(journal)
                ]
        return bands

    def timeline_chart(self) -> Markup:
        spans = []
        end = (self.r.finished_at or self.t0) - self.t0
        for e in self.r.experiments:
            if e.started_at is not None:
                stop = (e.finished_at or self.r.finished_at or e.started_at) - self.t0
                spans.append(
                    drill_charts.Span(e.title or e.file, e.started_at - self.t0, stop, EXPERIMENT_COLOR, e.verdict)
                )
        for s in self.r.steps:
            if s.due_at is None:
                continue
            stop = (s.done_at if s.done_at is not None else (self.r.finished_at or s.due_at)) - self.t0
            expected = None if s.expected_s is None else s.due_at - self.t0 + s.expected_s
            label = f"{s.status}, took {format_duration(s.took_s)} (expected {format_duration(s.expected_s)})"
            color = STEP_COLORS.get(s.status, "#9aa5b1")
            spans.append(drill_charts.Span(s.title, s.due_at - self.t0, stop, color, label, expected))
            end = max(end, stop, expected or 0.0)
        legend = [("experiment", EXPERIMENT_COLOR), ("step on time", charts.OK_FILL), ("late", STEP_COLORS["late"])]
        legend.append(("missed", charts.BAD_FILL))
        svg = drill_charts.timeline_chart(
            "Drill timeline: experiments and runbook steps (dashed tick: expected)",
            spans,
            x_max=end,
            bands=self.fault_bands(),
            legend=legend,
        )
        return Markup(svg)  # noqa: S704 — charts.py escapes every text it writes

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
        limits = [line for line in regulatory if self.trading and peak >= line.value / 2]
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
            drill_charts.trend_chart(
                "RTO, detection and recovery over past runs", labels, times, unit="s", thresholds=limits
            ),
            drill_charts.trend_chart(
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
                "started": utc_iso(h.started_at),
                "current": h.drill_run_id == self.r.drill_run_id,
                "tone": verdict(h.verdict)[1],
                "rto": format_duration(h.rto_s),
                "ttd": format_duration(h.time_to_detect_s),
                "ttr": format_duration(h.time_to_recover_s),
                # Both are worst single experiments' figures: their larger is the worst single outage.
                "outage": classify_outage(
                    max((v for v in (h.rto_s, h.time_to_recover_s) if v is not None), default=None),
                    trading=self.trading,
                ),
            }
            for h in self.history
        ]
