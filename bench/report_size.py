"""Benchmark: render time and size of the HTML reports of a 1-hour drill at 1,000 requests/s.

Usage: ``.venv/bin/python bench/report_size.py [--rounds 5] [--seconds 3600] [--rps 1000] [--keep DIR]``

Synthesises a realistic journal: `--seconds` of per-second load metrics at about `--rps` requests/s
for four request names plus '*' (noisy latencies, so nothing compresses to a straight line), three
faults (a matcher kill, Redis latency, a network partition) with error and latency spikes, one
steady-state point per second, the hypothesis' checks naming three request names (so the experiment
report draws its maximum of charts) and a few hundred events. A drill record points at that journal,
with a four-step runbook and 20 past runs of history. Each round times, separately:

- the experiment report: load journal.json, render report.html, write it;
- the drill report: load drill.json (the record) and the journal, render drill-report.html, write it;

and measures each file's size. With Chromium installed it also times, once per report, how long the
system's Chromium takes to open the file and lay it out (headless, under Playwright) and to print it
to PDF. Prints every round, the median, and the ratio of each to the budget (5 s and 2 MB): a ratio
at or below 1.0 is within it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from drilling.record import DrillRecord, load_drill_record, save_drill_record  # noqa: E402
from engine.journal import (  # noqa: E402
    CheckRecord,
    EventRecord,
    FaultRecord,
    Journal,
    MetricPoint,
    RecoveryRecord,
    SteadyPoint,
    load_journal,
)
from reports.html import write_html  # noqa: E402
from reports.management import write_management_report  # noqa: E402
from reports.pdf import PdfError, find_chromium, print_pdf  # noqa: E402
from tests.reports.drill_records import make_drill, make_history  # noqa: E402
from tests.reports.report_journals import make_journal  # noqa: E402

BUDGET_S = 5.0
BUDGET_BYTES = 2_000_000
# request name → (share of the requests, p50 ms)
REQUESTS = {"POST /orders": (0.45, 9.0), "DELETE /orders/{id}": (0.15, 7.0), "GET /book/{symbol}": (0.3, 3.0)}
REQUESTS["GET /positions"] = (0.1, 5.0)
FAULTS = (  # kind, target, offset (share of the run), duration s, how hard it hits (error share, latency factor)
    ("process.kill", "matcher", 1 / 6, 30.0, (0.35, 20.0)),
    ("network.latency", "matcher->redis", 5 / 12, 120.0, (0.02, 8.0)),
    ("network.partition", "gateway->matcher", 3 / 4, 60.0, (0.6, 30.0)),
)


Window = tuple[float, float, float, float]  # start, end, error share, latency factor


def synthesise(seconds: int, rps: int, seed: int = 7) -> Journal:
    """A journal of a `seconds`-long run under `rps` requests/s with three faults."""
    rng = random.Random(seed)
    journal = make_journal("deviated", seconds=seconds)  # phases, load, integrity-free skeleton
    t0 = journal.started_at + 2.0
    checks = [c for c in journal.checks if c.phase == "baseline"]
    events = journal.events[:3]
    faults, windows = synthesise_faults(t0, seconds, checks, events)
    checks += baseline_checks(t0)
    metrics, steady = synthesise_load(rng, t0, seconds, rps, windows, events)
    journal.faults, journal.checks, journal.metrics, journal.steady = faults, checks, metrics, steady
    journal.events = sorted(events, key=lambda e: e.t)
    journal.finished_at = t0 + seconds + 3.0
    return journal


def synthesise_faults(
    t0: float, seconds: int, checks: list[CheckRecord], events: list[EventRecord]
) -> tuple[list[FaultRecord], list[Window]]:
    """The FAULTS, rolled back and recovered, with their events and p99 checks (appended); and their windows."""
    faults: list[FaultRecord] = []
    windows: list[Window] = []
    for index, (kind, target, share, duration, (errors, slow)) in enumerate(FAULTS, start=1):
        start = t0 + round(share * seconds)
        end = start + duration
        windows.append((start, end, errors, slow))
        recovered = end + 8.0
        faults.append(
            FaultRecord(
                index=index,
                kind=kind,
                target=target,
                at_s=start - t0,
                duration_s=duration,
                params={"latency_ms": 200} if kind == "network.latency" else {},
                status="rolled_back",
                scheduled_at=start,
                injected_at=start + 0.01,
                ended_at=end + 0.6,
                recovery=RecoveryRecord(
                    degraded_at=start, recovered_at=recovered, rto_s=recovered - start, impact_s=int(duration) + 8
                ),
            )
        )
        events.append(EventRecord(t=start, type="fault_injected", message=f"#{index} {kind} {target}"))
        events.append(EventRecord(t=end + 0.6, type="fault_rolled_back", message=f"#{index} rolled back"))
        for request in [*REQUESTS][:3]:
            checks.append(
                CheckRecord(
                    probe=f"{request} p99",
                    phase="during",
                    fault_index=index,
                    kind="metric",
                    metric="latency_p99_ms",
                    request=request,
                    max=1000.0,
                    observed=400.0,
                    ok=True,
                    window=(start, end),
                )
            )
    return faults, windows


def baseline_checks(t0: float) -> list[CheckRecord]:
    """The baseline p99 checks of the first three request names, over the first minute."""
    return [
        CheckRecord(
            probe=f"{request} p99",
            phase="baseline",
            kind="metric",
            metric="latency_p99_ms",
            request=request,
            max=150.0,
            observed=45.0,
            ok=True,
            window=(t0, t0 + 60),
        )
        for request in [*REQUESTS][:3]
    ]


def synthesise_load(
    rng: random.Random, t0: float, seconds: int, rps: int, windows: list[Window], events: list[EventRecord]
) -> tuple[dict[str, list[MetricPoint]], list[SteadyPoint]]:
    """Per-second metrics of every request name and '*', and the steady state; a probe event every 15 s (appended)."""
    metrics: dict[str, list[MetricPoint]] = {name: [] for name in ["*", *REQUESTS]}
    steady: list[SteadyPoint] = []
    for i in range(seconds):
        t = t0 + i
        hit = next(((e, s) for start, end, e, s in windows if start <= t < end + 8.0), (0.001, 1.0))
        count = failed = 0
        worst = {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}  # '*' shows the slowest request name's quantiles
        for name, (share, p50) in REQUESTS.items():
            n = max(int(rng.gauss(rps * share, rps * share * 0.05)), 1)
            fail = sum(rng.random() < hit[0] for _ in range(min(n, 50))) * n // min(n, 50)
            q50 = round(p50 * hit[1] * rng.lognormvariate(0, 0.15), 1)
            q95, q99 = round(q50 * rng.uniform(2.5, 3.5), 1), round(q50 * rng.uniform(4.5, 6.5), 1)
            messages = {"ConnectionRefusedError(111)": fail} if fail else {}
            metrics[name].append(
                MetricPoint(t=t, n=n, fail=fail, p50=q50, p95=q95, p99=q99, max=q99 * 1.4, users=500, errors=messages)
            )
            count, failed = count + n, failed + fail
            for key, value in (("p50", q50), ("p95", q95), ("p99", q99), ("max", q99 * 1.4)):
                worst[key] = max(worst[key], value)
        metrics["*"].append(MetricPoint(t=t, n=count, fail=failed, users=500, **worst))
        ok = hit[0] < 0.01
        steady.append(SteadyPoint(t=t, ok=ok, failing=[] if ok else ["error rate"]))
        if i % 15 == 0:
            events.append(EventRecord(t=t, type="probe_observed", message="steady state held" if ok else "deviated"))
    return metrics, steady


def drill_for(journal: Journal, directory: Path) -> DrillRecord:
    record = make_drill(
        directory, journal=journal, rto_s=max(f.recovery.rto_s or 0.0 for f in journal.faults if f.recovery)
    )
    record.experiments[0].journal = str(directory / "exp" / "journal.json")
    return record


def browser_times(pages: list[Path]) -> list[tuple[float, float]]:
    """Seconds for Chromium to load and lay out each page, and to print it to PDF; [] without Chromium."""
    try:
        executable = find_chromium()
    except PdfError as exc:
        print(f"browser timings skipped: {exc}")
        return []
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable))
        for page_path in pages:
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(page_path.as_uri(), wait_until="load")
            page.evaluate("document.body.getBoundingClientRect().height")  # forces the layout
            load_s = time.perf_counter() - started
            page.close()
            pdf_s, _ = _timed(lambda path=page_path: print_pdf(path, path.with_suffix(".pdf"), browser=browser))
            times.append((load_s, pdf_s))
        browser.close()
    return times


def _timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--rps", type=int, default=1000)
    parser.add_argument("--keep", type=Path, default=None, help="write the reports here and keep them")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        synth_s, journal = _timed(lambda: synthesise(args.seconds, args.rps))
        record = drill_for(journal, directory)  # writes exp/journal.json
        save_drill_record(record, directory / "drill.json")
        history = make_history(record, [("passed", 200.0 + 10 * i) for i in range(19)])
        journal_bytes = (directory / "exp" / "journal.json").stat().st_size
        requests = sum(p.n for p in journal.metrics["*"])
        print(
            f"journal: {args.seconds:,} s, {requests / args.seconds:,.0f} req/s, {len(journal.metrics)} request names "
            f"(incl. '*'), {len(journal.faults)} faults, {len(journal.events)} events; "
            f"journal.json {journal_bytes / 1e6:.1f} MB (synthesised in {synth_s:.1f} s)"
        )
        rows: list[tuple[float, int, float, int]] = []
        print("round | experiment report s | size MB | drill report s | size MB")
        for n in range(1, args.rounds + 1):
            exp_s, exp_path = _timed(
                lambda: write_html(load_journal(directory / "exp" / "journal.json"), directory / "exp" / "report.html")
            )
            drill_s, drill_path = _timed(
                lambda: write_management_report(load_drill_record(directory / "drill.json"), directory, history)
            )
            exp_b, drill_b = exp_path.stat().st_size, drill_path.stat().st_size
            rows.append((exp_s, exp_b, drill_s, drill_b))
            print(f"{n:>5} | {exp_s:>19.2f} | {exp_b / 1e6:>7.2f} | {drill_s:>14.2f} | {drill_b / 1e6:>7.2f}")
        exp_s = statistics.median(r[0] for r in rows)
        drill_s = statistics.median(r[2] for r in rows)
        exp_b, drill_b = rows[-1][1], rows[-1][3]
        print(f"\nbudget: {BUDGET_S:g} s and {BUDGET_BYTES / 1e6:g} MB per report (ratio <= 1.0 is within it)")
        for name, seconds, size in (("experiment report", exp_s, exp_b), ("drill report", drill_s, drill_b)):
            within = "within" if seconds <= BUDGET_S and size <= BUDGET_BYTES else "OVER"
            print(
                f"{name:>17}: median {seconds:.2f} s (ratio {seconds / BUDGET_S:.2f}), "
                f"{size / 1e6:.2f} MB (ratio {size / BUDGET_BYTES:.2f}) — {within} budget"
            )
        pages = [directory / "exp" / "report.html", directory / "drill-report.html"]
        for page_path, (load_s, pdf_s) in zip(pages, browser_times(pages), strict=False):
            print(
                f"{page_path.name:>17}: Chromium opens and lays it out in {load_s:.2f} s "
                f"(ratio {load_s / BUDGET_S:.2f}); printed to PDF in {pdf_s:.2f} s "
                f"({page_path.with_suffix('.pdf').stat().st_size / 1e6:.2f} MB)"
            )
        if args.keep:
            print(f"kept in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
