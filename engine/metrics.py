"""Per-second load metrics from the Locust side, merged exactly across sources with HdrHistograms.

Each (second, request name) cell keeps counts and a latency histogram (microseconds, successful
requests only). Cells older than a few seconds are frozen to their compact encoded form, so an
hour-long run costs megabytes, not gigabytes; windows (baseline, recovery) merge histograms.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from engine.journal import MetricPoint

ALL = "*"
_LOWEST_US, _HIGHEST_US, _DIGITS = 1, 60_000_000, 2
_HOT_SECONDS = 10


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)


@dataclass
class Cell:
    n: int = 0
    fail: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    _hist: HdrHistogram | None = None
    _encoded: bytes | None = None

    def histogram(self) -> HdrHistogram:
        if self._hist is None:
            self._hist = HdrHistogram.decode(self._encoded) if self._encoded else new_histogram()
            self._encoded = None
        return self._hist

    def merge(self, n: int, fail: int, hist: HdrHistogram | None, errors: dict[str, int]) -> None:
        self.n += n
        self.fail += fail
        self.errors.update(errors)
        if hist is not None and hist.get_total_count():
            self.histogram().add(hist)

    def freeze(self) -> None:
        if self._hist is not None:
            self._encoded = self._hist.encode() if self._hist.get_total_count() else None
            self._hist = None


@dataclass(frozen=True)
class Aggregate:
    """Load metrics of one request name (or all) over a window of whole seconds."""

    seconds: int
    n: int
    fail: int
    ok_count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @property
    def rps(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0

    @property
    def error_rate(self) -> float | None:
        return self.fail / self.n if self.n else None

    def value(self, metric: str) -> float | None:
        """The value of an experiment-file metric name; None when there is nothing to measure."""
        if metric == "throughput_rps":
            return self.rps
        if metric == "error_rate":
            return self.error_rate
        return {
            "latency_p50_ms": self.p50,
            "latency_p95_ms": self.p95,
            "latency_p99_ms": self.p99,
            "latency_max_ms": self.max,
        }[metric]


def _ms(hist: HdrHistogram, percentile: float) -> float | None:
    if not hist.get_total_count():
        return None
    return round(float(hist.get_value_at_percentile(percentile)) / 1000.0, 3)


class MetricStore:
    """Receives stream records (see docs/contracts.md §2) and answers per-second and window queries."""

    def __init__(self) -> None:
        self._cells: dict[int, dict[str, Cell]] = {}
        self._users: dict[int, dict[str, int]] = {}
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.sources: set[str] = set()
        self.bad_records = 0

    def add(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "start":
            t = float(record["t"])
            self.started_at = t if self.started_at is None else min(self.started_at, t)
            self.sources.add(str(record.get("src", "")))
        elif kind == "stop":
            t = float(record["t"])
            self.stopped_at = t if self.stopped_at is None else max(self.stopped_at, t)
        elif kind == "second":
            self._add_second(record)

    def _add_second(self, record: dict[str, Any]) -> None:
        try:
            second = int(record["t"])
            name = str(record["name"])
            n, fail = int(record["n"]), int(record.get("fail", 0))
            hist = HdrHistogram.decode(record["hist"]) if record.get("hist") else None
        except (KeyError, TypeError, ValueError):
            self.bad_records += 1
            return
        errors = record.get("errors") or {}
        row = self._cells.setdefault(second, {})
        row.setdefault(name, Cell()).merge(n, fail, hist, errors)
        row.setdefault(ALL, Cell()).merge(n, fail, hist, errors)
        users = record.get("users")
        if isinstance(users, int):
            # Every line of a source repeats its user count: keep one per source, sum across sources.
            self._users.setdefault(second, {})[str(record.get("src", ""))] = users
        self._freeze_before(second - _HOT_SECONDS)

    def _freeze_before(self, second: int) -> None:
        for t in [t for t in self._cells if t < second]:
            for cell in self._cells[t].values():
                cell.freeze()

    def _users_at(self, second: int) -> int | None:
        per_source = self._users.get(second)
        return sum(per_source.values()) if per_source else None

    def seconds(self) -> list[int]:
        return sorted(self._cells)

    def names(self) -> list[str]:
        found = {name for row in self._cells.values() for name in row}
        return sorted(found - {ALL}) + ([ALL] if ALL in found else [])

    def last_second(self) -> int | None:
        return max(self._cells) if self._cells else None

    def window(self, start: float, end: float, name: str | None = None) -> Aggregate:
        """Merge the whole seconds from the one nearest `start` up to the last one over by `end` (at least one)."""
        first = math.floor(start + 0.5)
        last = max(first + 1, math.floor(end))
        key = name or ALL
        hist = new_histogram()
        n = fail = 0
        for second in range(first, last):
            cell = self._cells.get(second, {}).get(key)
            if cell is None:
                continue
            n += cell.n
            fail += cell.fail
            hist.add(cell.histogram())
        return Aggregate(
            seconds=last - first,
            n=n,
            fail=fail,
            ok_count=int(hist.get_total_count()),
            p50=_ms(hist, 50),
            p95=_ms(hist, 95),
            p99=_ms(hist, 99),
            max=round(hist.get_max_value() / 1000.0, 3) if hist.get_total_count() else None,
        )

    def second(self, second: int, name: str | None = None) -> Aggregate:
        return self.window(second, second + 1, name)

    def total_requests(self, second: int) -> int:
        cell = self._cells.get(second, {}).get(ALL)
        return cell.n if cell else 0

    def errors(self, start: float, end: float) -> Counter[str]:
        found: Counter[str] = Counter()
        for second in range(math.ceil(start), math.floor(end)):
            cell = self._cells.get(second, {}).get(ALL)
            if cell:
                found.update(cell.errors)
        return found

    def series(self, start: float | None = None, end: float | None = None) -> dict[str, list[MetricPoint]]:
        """Per-second points for every request name and '*', for the journal.

        With `start`/`end`, only seconds wholly inside [start, end]: a partial first or last second
        would show as a false dip in throughput.
        """
        result: dict[str, list[MetricPoint]] = {}
        first = math.ceil(start) if start is not None else None
        last = math.floor(end) if end is not None else None
        for second in self.seconds():
            if (first is not None and second < first) or (last is not None and second + 1 > last):
                continue
            for name, cell in self._cells[second].items():
                hist = cell.histogram()
                result.setdefault(name, []).append(
                    MetricPoint(
                        t=float(second),
                        n=cell.n,
                        fail=cell.fail,
                        p50=_ms(hist, 50),
                        p95=_ms(hist, 95),
                        p99=_ms(hist, 99),
                        max=round(hist.get_max_value() / 1000.0, 3) if hist.get_total_count() else None,
                        users=self._users_at(second) if name == ALL else None,
                        errors=dict(cell.errors.most_common(5)),
                    )
                )
                cell.freeze()
        return dict(sorted(result.items(), key=lambda item: (item[0] == ALL, item[0])))
