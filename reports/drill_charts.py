"""The drill report's own charts: a timeline of bars on the drill's clock, and trends over past runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# The primitives are the package's own: shared with reports.run_charts through reports.charts.
from reports.charts import (
    AXIS,
    BOTTOM,
    GRID,
    INK,
    MUTED,
    TOP,
    Band,
    Series,
    Threshold,
    _el,
    _Frame,
    _group,
    _legend,
    _open_svg,
    _path_data,
    _placeholder,
    _thresholds_svg,
    format_tick,
    nice_ticks,
)


@dataclass(frozen=True)
class Span:
    """One bar of a timeline chart: on row `row`, from `start` to `end` seconds; `expected_end` draws a tick."""

    row: str
    start: float
    end: float
    color: str
    label: str = ""
    expected_end: float | None = None


def timeline_chart(
    title: str,
    spans: Sequence[Span],
    *,
    x_max: float | None = None,
    bands: Sequence[Band] = (),
    legend: Sequence[tuple[str, str]] = (),
    standalone: bool = False,
) -> str:
    """Rows of bars on a shared time axis (seconds since the start), fault windows outlined behind them."""
    rows = list(dict.fromkeys(s.row for s in spans))
    row_h, label_w = 22, 230
    height = TOP + BOTTOM + 8 + row_h * max(len(rows), 1)
    if not rows:
        return _placeholder(title, height, standalone)
    ends = [s.end for s in spans] + [s.expected_end or 0.0 for s in spans] + [b.end for b in bands]
    frame = _Frame(max(x_max or 0.0, *ends), 0.0, 1.0, height)
    frame.left = float(label_w)
    parts = _open_svg(title, height, standalone)
    frame.bands(parts, bands, outline=True)
    for i, row in enumerate(rows):
        y = frame.top + 4 + i * row_h
        shown = row if len(row) <= 34 else row[:33] + "…"
        parts.append(_el("text", shown, x=frame.left - 8, y=y + 12, text_anchor="end", fill=INK))
        parts.append(_el("line", x1=frame.left, y1=y + row_h - 2, x2=frame.right, y2=y + row_h - 2, stroke=GRID))
    for span in spans:
        y = frame.top + 4 + rows.index(span.row) * row_h
        x1, x2 = frame.x(span.start), frame.x(max(span.end, span.start))
        bar = _el("rect", x=x1, y=y + 2, width=max(x2 - x1, 2.0), height=14, rx=2, fill=span.color)
        tick = ""
        if span.expected_end is not None:
            xe = frame.x(span.expected_end)
            tick = _el("line", x1=xe, y1=y - 1, x2=xe, y2=y + 19, stroke=INK, stroke_width=2, stroke_dasharray="3 2")
        parts.append(_group("span", f"{span.row}: {span.label}" if span.label else span.row, bar, tick))
    frame.time_axis(parts)
    _legend(parts, legend)
    return "".join([*parts, "</svg>"])


def trend_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str,
    thresholds: Sequence[Threshold] = (),
    y_max: float | None = None,
    height: int = 230,
    standalone: bool = False,
) -> str:
    """Values over a sequence of runs: x is the run's position (`labels` under the axis), a dot per value.

    Series points are (position, value) with positions 0 .. len(labels) - 1; None leaves a gap.
    """
    values = [y for s in series for _, y in s.points if y is not None and math.isfinite(y)]
    if not values or not labels:
        return _placeholder(title, height, standalone)
    refs = [t.value for t in thresholds if math.isfinite(t.value)]
    ticks = nice_ticks(0.0, max(*values, *refs, y_max or 0.0))
    frame = _Frame(float(len(labels)), ticks[0], ticks[-1], height)
    parts = _open_svg(title, height, standalone)
    frame.value_axis(parts, ticks, unit)
    every = max(1, math.ceil(len(labels) / 10))
    for i, label in enumerate(labels):
        if (len(labels) - 1 - i) % every == 0:  # counted from the newest run, which is always labelled
            parts.append(_el("text", label, x=frame.x(i + 0.5), y=frame.bottom + 16, text_anchor="middle", fill=MUTED))
    parts.append(_el("line", x1=frame.left, y1=frame.bottom, x2=frame.right, y2=frame.bottom, stroke=AXIS))
    _thresholds_svg(parts, frame, thresholds)
    for item in series:
        shifted = [(x + 0.5, y) for x, y in item.points]
        data = _path_data(shifted, frame, 1.5)
        dots = [
            _group(
                "dot",
                f"{item.name}, {labels[int(x)]}: {format_tick(round(y, 1))} {unit}",
                _el("circle", cx=frame.x(x + 0.5), cy=frame.y(y), r=3.5, fill=item.color),
            )
            for x, y in item.points
            if y is not None and math.isfinite(y) and 0 <= int(x) < len(labels)
        ]
        parts.append(
            f'<path class="series" d="{data}" fill="none" stroke="{escape(item.color)}" stroke-width="1.6" '
            f'stroke-linejoin="round" stroke-linecap="round">{_el("title", item.name)}</path>'
        )
        parts += dots
    _legend(parts, [(s.name, s.color) for s in series])
    return "".join([*parts, "</svg>"])
