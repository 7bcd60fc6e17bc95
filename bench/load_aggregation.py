"""Benchmark: distributed load metrics aggregate exactly across 1, 2 and 4 Locust workers.

Usage: ``.venv/bin/python bench/load_aggregation.py [--seconds 10] [--users 40] [--workers 1,2,4]``

For each worker count, engine.load.LocustLoad runs the trading personas (loadgen/trading.py) against the
fake gateway of tests/loadgen/fake_gateway.py (its own process on 127.0.0.1; GET /accounts answers after
20 ms, the rest at once), exactly as `load.workers: N` does in an experiment: 1 is a single Locust
process, more is a master on loopback and N worker processes. The engine's MetricStore reads the
master's stream. Independently, a listener in every worker writes each request's own latency to a file
(the truth). Over the whole seconds after the ramp-up, printed side by side:

- aggregated RPS: requests per second in the merged stream (what the journal shows);
- sum of workers' RPS: each worker's own request count over the same seconds, summed; ratio = agg/sum;
- merged p99: the p99 of the merged HdrHistograms; union p99: the exact p99 of every worker's successful
  requests; mean-of-p99: the average of each worker's own p99 (the wrong way to aggregate, for contrast).

Every run is bounded (its duration + 60 s). Exit 0 when every ratio is 1.000 and every merged p99 is the
union's within HdrHistogram precision (2 significant digits), 1 otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.journal import LoadRecord  # noqa: E402
from engine.load import Distribution, LocustLoad  # noqa: E402
from engine.metrics import MetricStore  # noqa: E402

GATEWAY = REPO / "tests" / "loadgen" / "fake_gateway.py"
RAW_DIR_ENV = "RAW_LATENCY_DIR"
RAMP_S = 2  # seconds left out at the start: users spawning, connections opening
HDR_RELATIVE_PRECISION = 0.01  # 2 significant digits
RAW_LOCUSTFILE = f'''
import os
import time

from locust import events

from loadgen.trading import MarketMaker, RetailTrader  # noqa: F401

_out = open(os.path.join(os.environ["{RAW_DIR_ENV}"], f"{{os.getpid()}}.tsv"), "a", buffering=1)


@events.request.add_listener
def _raw(request_type, name, response_time, response_length, exception=None, **_kwargs):
    _out.write(f"{{time.time():.6f}}\\t{{int(response_time * 1000)}}\\t{{int(exception is None)}}\\n")
'''


@dataclass(frozen=True)
class Result:
    workers: int
    seconds: int
    aggregated_rps: float
    sum_worker_rps: float
    per_worker_rps: list[float]
    merged_p99_ms: float
    union_p99_ms: float
    mean_of_p99_ms: float

    @property
    def ratio(self) -> float:
        return self.aggregated_rps / self.sum_worker_rps if self.sum_worker_rps else math.nan

    @property
    def p99_exact(self) -> bool:
        return abs(self.merged_p99_ms - self.union_p99_ms) <= self.union_p99_ms * HDR_RELATIVE_PRECISION + 0.001


@contextmanager
def fake_gateway() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, str(GATEWAY), "--fail-every", "0", "--slow-ms", "20"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise SystemExit(f"the fake gateway did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def percentile(values: list[int], pct: float) -> float:
    """The exact percentile in ms, by the rank HdrHistogram uses (nearest rank, rounded half up)."""
    ordered = sorted(values)
    rank = max(1, int(pct * len(ordered) / 100 + 0.5))
    return ordered[rank - 1] / 1000.0


def run(workers: int, users: int, seconds: int, scratch: Path) -> Result:
    raw_dir = scratch / f"raw-{workers}"
    raw_dir.mkdir()
    locustfile = scratch / "raw_trading.py"
    locustfile.write_text(RAW_LOCUSTFILE)
    os.environ[RAW_DIR_ENV] = str(raw_dir)
    store = MetricStore()
    with fake_gateway() as host:
        record = LoadRecord(locustfile="trading.py", users=users, spawn_rate=users, duration_s=seconds, host=host)
        load = LocustLoad(record, locustfile, scratch / f"run-{workers}", Distribution(workers=workers))
        load.start()
        try:
            started = load.wait_started(30)
            deadline = time.monotonic() + seconds + 60
            while load.running() and time.monotonic() < deadline:
                for rec in load.poll():
                    store.add(rec)
                time.sleep(0.2)
            load.wait_finished(max(1.0, deadline - time.monotonic()))
        finally:
            load.stop()
        for rec in load.poll():
            store.add(rec)
    first = math.ceil(started) + RAMP_S
    last = math.floor(started + seconds) - 1  # the last whole second before the users stop
    window = range(first, last)
    aggregated = sum(store.total_requests(t) for t in window)
    measuring = [p.pid for p in load.worker_processes] or load.pids[:1]
    per_worker: list[float] = []
    union: list[int] = []
    worker_p99: list[float] = []
    for pid in measuring:
        rows = [line.split("\t") for line in (raw_dir / f"{pid}.tsv").read_text().splitlines()]
        inside = [(int(us), ok == "1") for t, us, ok in rows if int(float(t)) in window]
        per_worker.append(len(inside) / len(window))
        ok_us = [us for us, ok in inside if ok]
        union += ok_us
        worker_p99.append(percentile(ok_us, 99))
    merged = store.window(first, last)
    assert merged.p99 is not None
    return Result(
        workers=workers,
        seconds=len(window),
        aggregated_rps=aggregated / len(window),
        sum_worker_rps=sum(per_worker),
        per_worker_rps=per_worker,
        merged_p99_ms=merged.p99,
        union_p99_ms=percentile(union, 99),
        mean_of_p99_ms=sum(worker_p99) / len(worker_p99),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="load duration per worker count (5-60)")
    parser.add_argument("--users", type=int, default=40, help="simulated users in total (4-400)")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts (each 1-8)")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.workers.split(",")]
    if not 5 <= args.seconds <= 60 or not 4 <= args.users <= 400 or not all(1 <= c <= 8 for c in counts):
        parser.error("--seconds 5-60, --users 4-400, --workers each 1-8")
    print(f"host {socket.gethostname()}, {os.cpu_count()} CPUs; {args.users} users, {args.seconds}s per run")
    header = (
        f"{'workers':>7} {'secs':>4} {'agg RPS':>9} {'sum RPS':>9} {'ratio':>6}  {'per-worker RPS':<28}"
        f" {'merged p99':>10} {'union p99':>9} {'mean-of-p99':>11}"
    )
    print(header)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-load-aggregation-") as scratch:
        for count in counts:
            r = run(count, args.users, args.seconds, Path(scratch))
            ok &= round(r.ratio, 3) == 1.0 and r.p99_exact
            per_worker = " ".join(f"{rps:.0f}" for rps in r.per_worker_rps)
            print(
                f"{r.workers:>7} {r.seconds:>4} {r.aggregated_rps:>9.1f} {r.sum_worker_rps:>9.1f} {r.ratio:>6.3f}  "
                f"{per_worker:<28} {r.merged_p99_ms:>9.2f}ms {r.union_p99_ms:>7.2f}ms {r.mean_of_p99_ms:>9.2f}ms",
                flush=True,
            )
    print("aggregation exact" if ok else "MISMATCH: aggregated figures differ from the workers' own")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
