"""Server-side SVG chart primitives (no JavaScript, nothing fetched); every text is escaped here.

reports.run_charts draws a journal's charts with them, reports.drill_charts a drill's timeline and trends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

from reports.formatting import format_offset as format_offset  # re-exported: the charts' time-axis labels

Point = tuple[float, float | None]

WIDTH = 900
LEFT, RIGHT, TOP, BOTTOM = 58, 18, 34, 30
FONT = "system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif"
INK, GRID, AXIS, MUTED = "#1d2733", "#e3e6ea", "#5f6b7a", "#5f6b7a"
BAND_FILL, BAND_TEXT = "#f4a261", "#8a3b00"
OK_FILL, BAD_FILL, UNKNOWN_FILL = "#2e7d32", "#c62828", "#eceff3"
STRADDLE_FILL = "#e9c46a"  # a whole-second bucket that holds a fault's injection: partly before it
LATENCY_COLORS = {"p50": "#1f77b4", "p95": "#e07b00", "p99": "#7b2cbf"}
_SHADE: dict[str, object] = dict(fill=BAND_FILL, fill_opacity=0.2, stroke=BAND_FILL, stroke_opacity=0.6)
_OUTLINE: dict[str, object] = {"fill": "none", "stroke": INK, "stroke_width": 1.2, "stroke_dasharray": "3 2"}
_DASHED: dict[str, object] = {"stroke_width": 1.2, "stroke_dasharray": "6 4"}
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class Series:
    """One named line: (seconds since the run's start, value or None for a gap)."""

    name: str
    points: Sequence[Point]
    color: str


@dataclass(frozen=True)
class Band:
    """A shaded time window, e.g. a fault from injection until its rollback was verified."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Threshold:
    """A horizontal reference line, e.g. the p99 limit of the hypothesis."""

    value: float
    label: str
    color: str = "#b3261e"


def _n(value: float) -> str:
    """A coordinate rounded to one decimal, without a trailing '.0' (output size matters at 3,600 points)."""
    text = f"{value:.1f}".removesuffix(".0")
    return "0" if text == "-0" else text


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    count = math.ceil((hi - first) / step - 1e-9)
    return [round(first + i * step, 10) for i in range(count + 1)]


def time_ticks(x_max: float, target: int = 8) -> list[float]:
    """Tick positions in seconds at human steps (10s, 1m, 5m, 10m, ...)."""
    step = next((s for s in _TIME_STEPS if x_max / s <= target), _TIME_STEPS[-1])
    return [float(i * step) for i in range(int(x_max // step) + 1)]


def format_tick(value: float) -> str:
    """Axis label for a value: 0, 2.5, 150, 12k."""
    return f"{value / 1000:g}k" if abs(value) >= 10_000 else (f"{value:g}" if value else "0")


def _el(tag: str, text: str | None = None, /, **attrs: object) -> str:
    """One SVG element with its attributes and text escaped here (`text_anchor` becomes `text-anchor`)."""
    out = [f"<{tag}"]
    for key, value in attrs.items():
        shown = _n(value) if isinstance(value, float) else str(value)
        out.append(f' {key.rstrip("_").replace("_", "-")}="{escape(shown, quote=True)}"')
    return "".join(out) + ("/>" if text is None else f">{escape(text, quote=False)}</{tag}>")


def _group(cls: str, title: str, *children: str) -> str:
    return f'<g class="{cls}"><title>{escape(title, quote=False)}</title>{"".join(children)}</g>'


def _open_svg(title: str, height: int, standalone: bool) -> list[str]:
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    return [
        f'<svg{ns} class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" font-family="{escape(FONT)}" font-size="11">',
        _el("title", title),
        _el("text", title, x=LEFT, y=16, font_size=13, font_weight=600, fill=INK),
    ]


def _placeholder(title: str, height: int, standalone: bool) -> str:
    parts = _open_svg(title, height, standalone)
    box = {"width": WIDTH - LEFT - RIGHT, "height": height - TOP - BOTTOM}
    parts.append(_el("rect", x=LEFT, y=TOP, **box, fill="#f6f7f9", stroke=GRID))
    mid = round((TOP + height - BOTTOM) / 2 + 4)
    label = {"class_": "no-data", "text_anchor": "middle", "fill": MUTED}
    parts.append(_el("text", "no data", x=WIDTH // 2, y=mid, **label))
    return "".join([*parts, "</svg>"])


class _Frame:
    """The plot area of one chart and the scales from data to SVG coordinates."""

    def __init__(self, x_max: float, y_lo: float, y_hi: float, height: int) -> None:
        self.x_max = max(x_max, 1.0)
        self.y_lo, self.y_hi = y_lo, y_hi if y_hi > y_lo else y_lo + 1.0
        self.left, self.right = float(LEFT), float(WIDTH - RIGHT)
        self.top, self.bottom = float(TOP), float(height - BOTTOM)

    def x(self, value: float) -> float:
        return self.left + (self.right - self.left) * min(max(value, 0.0), self.x_max) / self.x_max

    def y(self, value: float) -> float:
        return self.bottom - (self.bottom - self.top) * (value - self.y_lo) / (self.y_hi - self.y_lo)

    def value_axis(self, parts: list[str], ticks: Sequence[float], unit: str) -> None:
        """Horizontal grid lines at `ticks`, their labels, and the unit written along the axis."""
        for tick in ticks:
            y = self.y(tick)
            label = _el("text", format_tick(tick), x=self.left - 6, y=y, dy=4, text_anchor="end", fill=MUTED)
            parts += [_el("line", x1=self.left, y1=y, x2=self.right, y2=y, stroke=GRID), label]
        rotate = f"translate(14 {_n((self.top + self.bottom) / 2)}) rotate(-90)"
        parts.append(_el("text", unit, transform=rotate, text_anchor="middle", fill=MUTED))

    def time_axis(self, parts: list[str]) -> None:
        for tick in time_ticks(self.x_max):
            x = self.x(tick)
            parts.append(_el("line", x1=x, y1=self.bottom, x2=x, y2=self.bottom + 4, stroke=AXIS))
            label = format_offset(tick)
            parts.append(_el("text", label, x=x, y=self.bottom + 16, text_anchor="middle", fill=MUTED))
        parts.append(_el("line", x1=self.left, y1=self.bottom, x2=self.right, y2=self.bottom, stroke=AXIS))

    def bands(self, parts: list[str], bands: Iterable[Band], *, outline: bool = False) -> None:
        """Shaded and labelled windows; `outline` draws dashed frames over a filled strip instead."""
        pad = 4.0 if outline else 0.0
        for band in bands:
            x1, x2 = self.x(band.start), self.x(max(band.end, band.start))
            y, height = self.top - pad, self.bottom - self.top + 2 * pad
            box = {"x": x1, "y": y, "width": max(x2 - x1, 1.5), "height": height}
            rect = _el("rect", **box, **(_OUTLINE if outline else _SHADE))
            text = "" if outline else _el("text", band.label, x=x1 + 3, y=self.top + 12, fill=BAND_TEXT, font_size=10)
            parts.append(_group("fault-band", band.label, rect, text))

    def straddles(self, parts: list[str], seconds: Iterable[Band]) -> None:
        """A marker under each whole second that holds an injection: its value mixes before and after."""
        for second in seconds:
            x1, x2 = self.x(second.start), self.x(second.end)
            box = {"x": x1, "y": self.bottom - 6, "width": max(x2 - x1, 1.5), "height": 6}
            parts.append(_group("straddle", second.label, _el("rect", **box, fill=STRADDLE_FILL)))


def hold_until(points: Sequence[Point], cuts: Sequence[float]) -> list[Point]:
    """The points with the previous value held until each cut that falls between two of them.

    A value stands for the second that ends at its x; without this the line towards the first second after
    an injection would start rising at the previous second, before the fault existed.
    """
    out: list[Point] = []
    for x, y in points:
        if out and out[-1][1] is not None:
            prev_x, prev_y = out[-1]
            out += [(c, prev_y) for c in sorted(cuts) if prev_x < c < x]
        out.append((x, y))
    return out


def _path_data(points: Sequence[Point], frame: _Frame, max_gap_s: float) -> str:
    """One path for a whole series: a new subpath after every gap, a dot for an isolated point."""
    out: list[str] = []
    prev_x: float | None = None
    pen_down, run, last = False, 0, ""
    for x_val, y_val in points:
        if y_val is None or not math.isfinite(y_val):
            pen_down, prev_x = False, None
            continue
        if prev_x is not None and x_val - prev_x > max_gap_s:
            pen_down = False
        prev_x = x_val
        coord = f"{_n(frame.x(x_val))} {_n(frame.y(y_val))}"
        if pen_down:
            if coord != last:  # implicit lineto after the first "L" keeps an hour of points small
                out.append(" " if run else "L")
                out.append(coord)
                run += 1
        else:
            if out and run == 0:
                out.append("h0")  # the previous subpath was one point: round caps draw it as a dot
            out.append("M" + coord)
            run, pen_down = 0, True
        last = coord
    if out and run == 0:
        out.append("h0")
    return "".join(out)


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    unit: str,
    x_max: float | None = None,
    bands: Sequence[Band] = (),
    thresholds: Sequence[Threshold] = (),
    height: int = 250,
    max_gap_s: float = 1.5,
    standalone: bool = False,
    cuts: Sequence[float] = (),
    straddles: Sequence[Band] = (),
) -> str:
    """A time-series chart: x = seconds since the run's start, y with round ticks in `unit`.

    A None value, or a jump in time longer than `max_gap_s`, leaves a gap in the line. At each of `cuts`
    (injections) the line holds its previous value (see hold_until); `straddles` marks seconds holding one.
    """
    values = [y for s in series for _, y in s.points if y is not None and math.isfinite(y)]
    if not values:
        return _placeholder(title, height, standalone)
    xs = [x for s in series for x, _ in s.points] + [b.end for b in bands]
    refs = [t.value for t in thresholds if math.isfinite(t.value)]
    ticks = nice_ticks(min(0.0, *values, *refs), max(*values, *refs, 0.0))
    frame = _Frame(max(x_max or 0.0, max(xs, default=0.0)), ticks[0], ticks[-1], height)
    parts = _open_svg(title, height, standalone)
    frame.value_axis(parts, ticks, unit)
    frame.bands(parts, bands)
    frame.time_axis(parts)
    _thresholds_svg(parts, frame, thresholds)
    frame.straddles(parts, straddles)
    for item in series:
        data = _path_data(hold_until(item.points, cuts), frame, max_gap_s)
        if data:
            parts.append(
                f'<path class="series" d="{data}" fill="none" stroke="{escape(item.color)}" '
                f'stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round">'
                f"{_el('title', item.name)}</path>"
            )
    _legend(parts, [(s.name, s.color) for s in series])
    return "".join([*parts, "</svg>"])


def _thresholds_svg(parts: list[str], frame: _Frame, thresholds: Sequence[Threshold]) -> None:
    """Dashed lines; a label too close to the previous one moves to the other end of the line."""
    previous: tuple[float, bool] | None = None
    for threshold in sorted(thresholds, key=lambda t: t.value):
        y = frame.y(threshold.value)
        right = previous is None or abs(previous[0] - y) > 13 or not previous[1]
        previous = (y, right)
        x, anchor = (frame.right - 4, "end") if right else (frame.left + 4, "start")
        color = threshold.color
        line = _el("line", x1=frame.left, y1=y, x2=frame.right, y2=y, stroke=color, **_DASHED)
        text = _el("text", threshold.label, x=x, y=y, dy=-4, text_anchor=anchor, fill=color, font_size=10)
        parts.append(_group("threshold", threshold.label, line, text))


def _legend(parts: list[str], entries: Sequence[tuple[str, str]]) -> None:
    """Swatches right-aligned on the title line; widths estimated (no font metrics on the server)."""
    widths = [22 + 6.4 * len(name) for name, _ in entries]
    x = WIDTH - RIGHT - sum(widths)
    for (name, color), width in zip(entries, widths, strict=True):
        parts += [
            _el("rect", x=x, y=8, width=12, height=10, rx=2, fill=color),
            _el("text", name, x=x + 16, y=17),
        ]
        x += width


def state_strip(
    title: str,
    states: Sequence[tuple[float, bool, str]],
    *,
    x_max: float | None = None,
    bands: Sequence[Band] = (),
    standalone: bool = False,
    cuts: Sequence[float] = (),
) -> str:
    """One cell per second, green when `ok`, red when not; adjacent equal seconds merge into one rect.

    A red second that holds one of `cuts` (an injection) is red only from the cut on; its part before is
    drawn as straddling, never as a deviation before the fault.
    """
    height = 104
    if not states:
        return _placeholder(title, height, standalone)
    limit = max(x_max or 0.0, max(t for t, _, _ in states) + 1.0, max((b.end for b in bands), default=0.0))
    frame = _Frame(limit, 0.0, 1.0, height)
    parts = _open_svg(title, height, standalone)
    strip = {"y": frame.top, "height": frame.bottom - frame.top}
    parts.append(_el("rect", x=frame.left, width=frame.right - frame.left, **strip, fill=UNKNOWN_FILL))
    fills = {"ok": OK_FILL, "bad": BAD_FILL, "straddle": STRADDLE_FILL}
    words = {"ok": "held", "bad": "deviated", "straddle": "before the injection, in a second that holds it,"}
    runs = _runs(_cells(states, cuts))
    for start, end, kind, notes in runs:
        x1, x2 = frame.x(start), frame.x(end)
        label = f"{words[kind]} {format_offset(start)} to {format_offset(end)}"
        label += (": " + ", ".join(notes)) if notes and kind != "straddle" else ""
        rect = _el("rect", x=x1, width=max(x2 - x1, 0.5), **strip, fill=fills[kind])
        parts.append(_group(kind, label, rect))
    frame.bands(parts, bands, outline=True)
    frame.time_axis(parts)
    legend = [("held", OK_FILL), ("deviated", BAD_FILL), ("no data", UNKNOWN_FILL)]
    if any(kind == "straddle" for _, _, kind, _ in runs):
        legend.append(("straddles an injection", STRADDLE_FILL))
    _legend(parts, legend)
    return "".join([*parts, "</svg>"])


def _cells(states: Sequence[tuple[float, bool, str]], cuts: Sequence[float]) -> list[tuple[float, float, str, str]]:
    """(start, end, kind, note) per second; a deviated second holding a cut is split at it."""
    cells = []
    for t, ok, note in sorted(states, key=lambda s: s[0]):
        inside = [c for c in cuts if t < c < t + 1.0]
        if not ok and inside:
            cells += [(t, min(inside), "straddle", note), (min(inside), t + 1.0, "bad", note)]
        else:
            cells.append((t, t + 1.0, "ok" if ok else "bad", note))
    return cells


def _runs(cells: Sequence[tuple[float, float, str, str]]) -> list[tuple[float, float, str, list[str]]]:
    runs: list[tuple[float, float, str, list[str]]] = []
    for start, end, kind, note in cells:
        if runs and runs[-1][2] == kind and start - runs[-1][1] < 0.5:
            first, _, _, notes = runs[-1]
            if note and note not in notes and len(notes) < 6:
                notes.append(note)
            runs[-1] = (first, end, kind, notes)
        else:
            runs.append((start, end, kind, [note] if note else []))
    return runs
