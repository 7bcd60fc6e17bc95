"""Benchmark: the journal's cost per event over a 1-hour run at one event a second, rewritten vs appended.

Usage: ``.venv/bin/python bench/journal_cost.py [--events 3600] [--rounds 1] [--dir DIR]``

Replays the events of a simulated 1-hour run (`--events` of them, one per simulated second) made from
engine.events: the run's start, its phases, three faults injected and rolled back, the steady state
changing (ProbeObserved with the failing probes) and notes with details, each turned into the
journal's EventRecord as the runner does. The journal starts as a real one does: a validated
experiment file (experiments/matcher-leader-kill.yaml), a stack summary, three planned faults. Both
ways write into the same directory (default: a temporary one under runs/, the runs directory's file
system), in turn, the order flipped every round:

- old: the whole journal written atomically after every event (`save_journal`: temp file, fsync, rename);
- new: every event appended to journal.events.jsonl, the whole journal rewritten only after the
  boundary events (engine.writer.SNAPSHOT_EVENTS) and once at the end (`JournalWriter.finish`).

Per event it times the write (wall clock) and over the run the CPU used; prints mean, p50, p99 and
max per event, the totals, the bytes written, and the ratio old/new. Each way's journal is read back
with `load_journal` and must hold every event.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine import eventlog  # noqa: E402
from engine.events import (  # noqa: E402
    Event,
    FaultInjected,
    FaultRolledBack,
    LoadStarted,
    Noted,
    PhaseFinished,
    PhaseStarted,
    ProbeObserved,
    RunFinished,
    RunStarted,
)
from engine.journal import EventRecord, FaultRecord, Journal, load_journal, save_journal  # noqa: E402
from engine.loader import load_document, validate_model  # noqa: E402
from engine.model import Experiment  # noqa: E402
from engine.writer import SNAPSHOT_EVENTS, JournalWriter  # noqa: E402
from injectors.base import FaultPlan, TargetRef, TargetResult  # noqa: E402

T0 = 1_800_000_000.0
EXPERIMENT = REPO / "experiments" / "matcher-leader-kill.yaml"
FAULTS = (  # kind, target, offset as a share of the run
    ("process.kill", "matcher", 1 / 6),
    ("network.latency", "matcher->redis", 5 / 12),
    ("redis.freeze", "redis", 3 / 4),
)
PROBES = ["order entry p99", "error rate", "gateway health", "throughput"]


def new_journal() -> Journal:
    doc = load_document(EXPERIMENT)
    experiment = validate_model(Experiment, doc)
    targets = {
        name: [{"kind": "process", "name": f"{name}-{i}", "pid": 4100 + i} for i in (1, 2)]
        for name in ("gateway", "matcher", "redis", "zookeeper")
    }
    faults = [
        FaultRecord(index=i, kind=kind, target=target, at_s=3600 * at, duration_s=30.0, params={"signal": "SIGKILL"})
        for i, (kind, target, at) in enumerate(FAULTS, start=1)
    ]
    return Journal(
        run_id="20260101T000000Z-matcher-leader-kill",
        tool_version="0.1.0",
        experiment_title=experiment.title,
        experiment_description=experiment.description,
        experiment_file=str(EXPERIMENT),
        experiment_sha256=doc.sha256,
        experiment=experiment.model_dump(mode="json"),
        stack={
            "name": "reference",
            "profile": "ha",
            "production": False,
            "trading": True,
            "endpoints": {"gateway": "http://127.0.0.1:8080", "redis": "redis://127.0.0.1:6379"},
            "targets": targets,
        },
        seed=7,
        started_at=T0,
        faults=faults,
    )


def run_events(n: int) -> list[Event]:
    """The events of a run of `n` seconds, one a second: phases, faults, steady-state changes, notes."""
    fixed: dict[int, list[Event]] = {0: [RunStarted(run_id="r", title="matcher leader kill", seed=7)]}
    fixed[1] = [PhaseStarted(phase="preflight")]
    fixed[2] = [PhaseFinished(phase="preflight", status="ok")]
    fixed[3] = [LoadStarted(users=60, duration_s=float(n), host="http://127.0.0.1:8080")]
    fixed[4] = [PhaseStarted(phase="baseline")]
    first = round(n * FAULTS[0][2])
    fixed[first - 2] = [PhaseFinished(phase="baseline", status="ok")]
    fixed[first - 1] = [PhaseStarted(phase="faults")]
    for i, (kind, target, share) in enumerate(FAULTS, start=1):
        at = round(n * share)
        hit = [f"{target}-1"]
        fixed[at] = [FaultInjected(index=i, kind=kind, target=target, targets=hit, ok=True)]
        fixed[at + 30] = [FaultRolledBack(index=i, kind=kind, ok=True, verified=True)]
    fixed[n - 6] = [PhaseFinished(phase="faults", status="ok")]
    fixed[n - 5] = [PhaseStarted(phase="recovery")]
    fixed[n - 4] = [PhaseFinished(phase="recovery", status="ok")]
    fixed[n - 3] = [PhaseStarted(phase="verdict")]
    fixed[n - 2] = [PhaseFinished(phase="verdict", status="ok", detail="passed")]
    fixed[n - 1] = [RunFinished(verdict="passed", exit_code=0, summary="The steady state held; RTO 4.2 s.")]
    events: list[Event] = []
    for second in range(n):
        t = T0 + second
        if second in fixed:
            events.extend(dataclasses.replace(e, t=t) for e in fixed[second])
        elif second % 10 == 0:
            events.append(
                Noted(
                    text=f"worker 2: {1200 + second % 97} requests in the last 10 s, 0 failed",
                    details={"worker": 2, "pid": 4321, "host": "10.0.0.12:5557"},
                    t=t,
                )
            )
        else:
            failing = PROBES[: second % 3] if second % 2 else []
            events.append(ProbeObserved(second=t - 1, ok=not failing, failing=failing, t=t))
    return events


def record(event: Event) -> EventRecord:
    return EventRecord(t=event.t, type=event.type, message=event.message(), data=event.data())


def replay(way: str, events: list[Event], directory: Path) -> dict[str, float]:
    """Write the run's journal one way; the per-event times (s), the CPU and the bytes written."""
    path = directory / way / "journal.json"
    path.parent.mkdir(parents=True)
    journal = new_journal()
    journal.faults[0].plan = FaultPlan(
        kind="process.kill", target="matcher", params={}, seed=7, targets=[TargetRef(id="matcher-1")]
    )
    journal.faults[0].inject = [
        TargetResult(
            id="matcher-1",
            action="inject",
            ok=True,
            started_at=T0 + 600,
            finished_at=T0 + 600.01,
            detail={"pid": 4101, "signal": "SIGKILL"},
        )
    ]
    written = [0]

    def save(journal: Journal, path: Path) -> None:
        save_journal(journal, path)
        written[0] += path.stat().st_size

    def append(path: Path, data: bytes) -> None:
        eventlog.append(path, data)
        written[0] += len(data)

    writer = JournalWriter(path, save=save, reserve_bytes=0, append=append)
    times = []
    cpu0 = time.process_time()
    for event in events:
        journal.events.append(record(event))
        started = time.perf_counter()
        if way == "old":
            save(journal, path)
        else:
            writer.event_added(journal)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    if way == "new":
        writer.finish(journal)
    final = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    assert writer.failure is None, writer.failure
    assert len(load_journal(path).events) == len(events)
    return {
        "mean": statistics.fmean(times),
        "p50": statistics.median(times),
        "p99": statistics.quantiles(times, n=100)[98],
        "max": max(times),
        "total": sum(times) + final,
        "cpu": cpu,
        "bytes": float(written[0]),
        "size": float(path.stat().st_size),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3600)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary dir under runs/)")
    args = parser.parse_args()
    base = args.dir or REPO / "runs"
    base.mkdir(parents=True, exist_ok=True)
    events = run_events(args.events)
    print(
        f"{len(events)} events, {sum(e.type in SNAPSHOT_EVENTS for e in events)} of them boundaries; "
        f"writing under {base} ({os.cpu_count()} cores)"
    )
    print("| round | way | mean/event | p50 | p99 | max | total | CPU | written | journal.json |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for round_ in range(1, args.rounds + 1):
        directory = Path(tempfile.mkdtemp(prefix="journal-cost-", dir=base))
        try:
            order = ("old", "new") if round_ % 2 else ("new", "old")
            result = {way: replay(way, events, directory) for way in order}
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        for way in ("old", "new"):
            r = result[way]
            print(
                f"| {round_} | {way} | {r['mean'] * 1e6:,.0f} µs | {r['p50'] * 1e6:,.0f} µs | "
                f"{r['p99'] * 1e6:,.0f} µs | {r['max'] * 1e3:,.1f} ms | {r['total']:.2f} s | {r['cpu']:.2f} s | "
                f"{r['bytes'] / 1e6:,.1f} MB | {r['size'] / 1e6:.2f} MB |"
            )
        ratios.append(result["old"]["mean"] / result["new"]["mean"])
    print(f"mean cost per event, old/new: {statistics.median(ratios):,.0f}x (median of {len(ratios)} round(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
