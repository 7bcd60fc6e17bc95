"""Benchmark: what the embedded Toxiproxy-API server (chaosproxy) adds to a TCP connection.

Usage: ``.venv/bin/python bench/proxy_overhead.py [--rounds 3] [--mb 512] [--trips 2000] [--toxic-trips 300]``
(``--quick`` for a smoke run of a few seconds; ``--loop-limit S`` bounds every loop, 120 s by default).

Three processes, all on 127.0.0.1, so no two of them share a GIL: a blocking echo + sink server
(``--serve``, one thread per connection), ``python -m chaosproxy serve`` with two proxies in front
of the echo server and one in front of the sink, and the client here. Each round measures, direct
and through the proxy side by side (the order flipped every round):

1. round-trip time of 64-byte messages on one connection (TCP_NODELAY, after a warm-up);
2. one-way throughput: ``--mb`` MB (1 MB = 10^6 bytes) sent with 256 KiB ``sendall`` calls to a
   sink that discards them and answers with the byte count; the clock stops at that answer.

Then, once, the accuracy of a 100 ms downstream ``latency`` toxic: RTT - direct p50 - 100 ms, in
blocks alternating with the same number of ``asyncio.sleep(0.1)`` calls in this process, whose
overshoot is the floor any asyncio timer meets on this machine (epoll's millisecond timeouts, the
scheduler's wake-up latency).

RTT percentiles pool every round's samples; throughput is the median of the rounds. From /proc
(Linux) it also reports the proxy's CPU during the proxied transfers, to tell a CPU-bound proxy
from a slow peer, and how busy other processes kept the machine, since that moves every figure.
``--profile FILE`` runs chaosproxy under cProfile (figures then include its overhead).

Prints the rounds and a table (metric, direct, proxied, added or ratio, goal, met). Exit 0 when the
run completed, whatever the figures; 1 when it could not run (2: bad arguments).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

# Run as `python bench/proxy_overhead.py`, bench/ is first on sys.path: the machinery is a sibling module.
from proxy_measure import (
    MESSAGE_BYTES,
    REPO,
    TOXIC_LATENCY_MS,
    Results,
    Settings,
    cpu_seconds,
    machine_cpu_seconds,
    measure,
    own_cpu_seconds,
    percentile,
    serve,
    start_chaosproxy,
    start_peer,
    stop,
)

GOAL_ADDED_P50_MS = 0.2
GOAL_PROXIED_MBPS = 300.0
GOAL_TOXIC_P99_ERROR_MS = 2.0
Row = tuple[str, str, str, str, str, str]


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def overhead_rows(results: Results) -> list[Row]:
    """The table's RTT and throughput rows: direct, proxied, what the proxy adds, the goal, whether it is met."""
    direct, proxied = results.rtt["direct"], results.rtt["proxied"]
    d50, d99, p50, p99 = (percentile(s, q) for s in (direct, proxied) for q in (50, 99))
    added50, added99 = p50 - d50, p99 - d99
    direct_mbps, proxied_mbps = (statistics.median(results.mbps[p]) for p in ("direct", "proxied"))
    return [
        (
            f"RTT p50, {MESSAGE_BYTES} B (ms)",
            f"{d50:.3f}",
            f"{p50:.3f}",
            f"+{added50:.3f} ms",
            f"added <= {GOAL_ADDED_P50_MS} ms",
            _met(added50 <= GOAL_ADDED_P50_MS),
        ),
        (f"RTT p99, {MESSAGE_BYTES} B (ms)", f"{d99:.3f}", f"{p99:.3f}", f"+{added99:.3f} ms", "-", "-"),
        (
            "throughput (MB/s)",
            f"{direct_mbps:.0f}",
            f"{proxied_mbps:.0f}",
            f"x{proxied_mbps / direct_mbps:.2f}",
            f"proxied >= {GOAL_PROXIED_MBPS:.0f} MB/s",
            _met(proxied_mbps >= GOAL_PROXIED_MBPS),
        ),
    ]


def toxic_rows(expected: float, errors: list[float]) -> list[Row]:
    """The latency toxic's p50 and p99 rows (none without toxic round trips)."""
    if not errors:
        return []
    e50, e99 = percentile(errors, 50), percentile(errors, 99)
    toxic = f"{TOXIC_LATENCY_MS} ms toxic RTT"
    goal = f"|error| <= {GOAL_TOXIC_P99_ERROR_MS} ms"
    ok = _met(max(abs(e50), abs(e99)) <= GOAL_TOXIC_P99_ERROR_MS)
    return [
        (f"{toxic} p50 (ms)", f"{expected:.3f}", f"{expected + e50:.3f}", f"{e50:+.3f} ms", "-", "-"),
        (f"{toxic} p99 (ms)", f"{expected:.3f}", f"{expected + e99:.3f}", f"{e99:+.3f} ms", goal, ok),
    ]


def print_details(results: Results, errors: list[float]) -> None:
    """The lines under the table: sample counts, the toxic's spread, the timer floor, rounds, CPU."""
    direct, proxied = results.rtt["direct"], results.rtt["proxied"]
    print(f"RTT samples: {len(direct)} direct, {len(proxied)} proxied, {len(errors)} with the toxic")
    if errors:
        print(
            f"toxic error = RTT - direct p50 - {TOXIC_LATENCY_MS} ms (the direct column):"
            f" min {min(errors):+.3f}, max {max(errors):+.3f} ms"
        )
    late = results.timer_late
    if late:
        print(
            f"timer floor: asyncio.sleep({TOXIC_LATENCY_MS / 1000:g}) in the bench process (no proxy) woke"
            f" {percentile(late, 50):+.3f} ms late at p50, {percentile(late, 99):+.3f} ms at p99"
            f" (max {max(late):+.3f}, {len(late)} sleeps)"
        )
    rounds = ", ".join(f"{d:.0f}/{p:.0f}" for d, p in zip(results.mbps["direct"], results.mbps["proxied"], strict=True))
    print(f"throughput rounds direct/proxied MB/s: {rounds}")
    if results.proxy_cpu_share:
        shares = ", ".join(f"{s:.0%}" for s in results.proxy_cpu_share)
        print(f"proxy CPU during proxied transfers (100% = one core): {shares}")
    if results.others_cores is not None:
        print(
            f"other processes on this machine kept {results.others_cores:.2f} of its {os.cpu_count()} cores busy"
            " on average during the run (near 0 on a quiet machine)"
        )
    if not results.complete:
        print("some transfers hit the time limit: their MB/s counts only the bytes sent in time")


def report(results: Results) -> None:
    """Print the table (metric, direct, proxied, added or ratio, goal, met) and the details under it."""
    expected = percentile(results.rtt["direct"], 50) + TOXIC_LATENCY_MS  # the toxic's RTT if it were exact
    errors = [rtt - expected for rtt in results.toxic_rtt]
    rows: list[Row] = [
        ("metric", "direct", "proxied", "added / ratio", "goal", "met"),
        *overhead_rows(results),
        *toxic_rows(expected, errors),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print()
    print_details(results, errors)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, help="rounds of direct + proxied measurements (default 3; quick 1)")
    parser.add_argument("--mb", type=int, help="MB (10^6 bytes) per transfer (default 512; quick 16)")
    parser.add_argument("--trips", type=int, help="64-byte round trips per path per round (default 2000; quick 200)")
    parser.add_argument("--toxic-trips", type=int, help="round trips with the 100 ms toxic (default 300; quick 10)")
    parser.add_argument("--loop-limit", type=float, default=120.0, help="seconds any one loop may take (120)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--profile", type=Path, help="run chaosproxy under cProfile, stats written to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser


def settings_of(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """The run's sizes: the options given, else the defaults (small ones with --quick); bad ones exit 2."""
    quick = args.quick
    settings = Settings(
        rounds=(1 if quick else 3) if args.rounds is None else args.rounds,
        mb=(16 if quick else 512) if args.mb is None else args.mb,
        trips=(200 if quick else 2000) if args.trips is None else args.trips,
        warmup=50 if quick else 500,
        toxic_trips=(10 if quick else 300) if args.toxic_trips is None else args.toxic_trips,
        loop_limit_s=args.loop_limit,
    )
    if min(settings.rounds, settings.mb, settings.trips, settings.toxic_trips) < 1 or settings.loop_limit_s <= 0:
        parser.error("counts, sizes and the loop limit must be positive")
    if settings.rounds > 50 or settings.mb > 100_000 or settings.trips > 1_000_000 or settings.toxic_trips > 10_000:
        parser.error("at most 50 rounds, 100000 MB, 1000000 trips and 10000 toxic trips")
    if settings.loop_limit_s > 3600:
        parser.error("the loop limit is at most 3600 s")
    return settings


def run(settings: Settings, profile: Path | None, results: Results, started: float) -> bool:
    """Start the peer and chaosproxy, create the proxies, measure into `results`; False when it could not run."""
    from clients.toxiproxy import ToxiproxyClient, ToxiproxyError

    machine_before, own_before = machine_cpu_seconds(), own_cpu_seconds()
    with tempfile.TemporaryFile("w+") as log:
        peer: subprocess.Popen[str] | None = None
        proxy: subprocess.Popen[str] | None = None
        try:
            peer, echo, sink = start_peer(__file__)
            proxy, api = start_chaosproxy(log, profile)
            client = ToxiproxyClient(api, timeout_s=5.0)
            ports = {"echo_direct": echo, "sink_direct": sink}
            for name, upstream in (("echo_proxied", echo), ("sink_proxied", sink), ("echo_toxic", echo)):
                created = client.create_proxy(name, "127.0.0.1:0", f"127.0.0.1:{upstream}")
                ports[name] = int(created.listen.rpartition(":")[2])
            client.add_toxic("echo_toxic", "bench_latency", "latency", {"latency": TOXIC_LATENCY_MS}, "downstream")
            print(
                f"chaosproxy {client.version()} at {api}; {settings.rounds} rounds of {settings.trips} round trips"
                f" and {settings.mb} MB per path; {settings.toxic_trips} round trips with a"
                f" {TOXIC_LATENCY_MS} ms latency toxic",
                flush=True,
            )
            measure(settings, ports, proxy.pid, results)
            ours = [cpu_seconds(proxy.pid), cpu_seconds(peer.pid), own_cpu_seconds() - own_before]
            machine_after = machine_cpu_seconds()
            if machine_before is not None and machine_after is not None and None not in ours:
                busy = machine_after - machine_before - sum(c for c in ours if c is not None)
                results.others_cores = max(0.0, busy) / (time.monotonic() - started)
        except (OSError, RuntimeError, ToxiproxyError) as exc:
            could_not_run(exc, log)
            return False
        finally:
            stop_all(proxy, peer)
    return True


def could_not_run(exc: Exception, log: IO[str]) -> None:
    print(f"could not run: {exc}", file=sys.stderr)
    log.seek(0)
    tail = log.read()[-3000:]
    if tail:
        print(f"chaosproxy log:\n{tail}", file=sys.stderr)


def stop_all(proxy: subprocess.Popen[str] | None, peer: subprocess.Popen[str] | None) -> None:
    """Stop chaosproxy, then the peer (closing its stdin is its signal to stop)."""
    if proxy is not None:
        stop(proxy)
    if peer is not None:
        assert peer.stdin is not None
        peer.stdin.close()
        stop(peer)


def main(argv: list[str] | None = None) -> int:
    options = parser()
    args = options.parse_args(argv)
    if args.serve:
        serve()
        return 0
    settings = settings_of(args, options)
    sys.path.insert(0, str(REPO))
    started = time.monotonic()
    results = Results()
    if not run(settings, args.profile, results, started):
        return 1
    report(results)
    if args.profile is not None:
        print(f"chaosproxy profile (cProfile, figures above include its cost): {args.profile}")
    print(f"took {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
