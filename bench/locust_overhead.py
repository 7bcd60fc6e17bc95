"""Benchmark: Locust throughput and CPU per request, bare versus with loadgen/metrics_plugin.py.

Usage: ``.venv/bin/python bench/locust_overhead.py [--seconds 10] [--rounds 3] [--users 20]``

One aiohttp endpoint (``GET /`` -> 200) runs in its own process on 127.0.0.1. Each round runs the
same minimal FastHttpUser locustfile (no wait time) twice, bare and with the plugin, alternating
which goes first. Throughput is Locust's own: the Aggregated ``Requests/s`` of ``--csv`` with
``--reset-stats`` (total requests over the time since all users were spawned). CPU per request is
the Locust process's user+system time (start-up included) over all the requests of the run (Locust's
``--json-file``), which shows the plugin's cost even when the server, not Locust, is the bottleneck.
Plugin runs also check that the metrics stream counted exactly the requests Locust counted. Prints
each round and the medians of plugin/bare.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "loadgen" / "metrics_plugin.py"
GOAL_RATIO = 0.95
LOCUSTFILE = '''"""Minimal load: one GET / as fast as one Locust process can."""
from locust import task
from locust.contrib.fasthttp import FastHttpUser


class Hammer(FastHttpUser):
    @task
    def root(self) -> None:
        self.client.get("/")
'''


@dataclass(frozen=True)
class Measurement:
    """One Locust run."""

    variant: str
    requests: int  # the whole run's, from --json-file
    rps: float  # after spawning, from --csv
    cpu_s: float
    stream_requests: int | None  # sum of ``n`` in the metrics stream, plugin runs only

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / max(self.requests, 1) * 1e6


def listener_cost_us(samples: int = 300_000) -> float:
    """CPU µs per request of the plugin's ``events.request`` listener, timed here without Locust."""
    sys.path.insert(0, str(REPO))
    from loadgen.metrics_plugin import SecondAggregator

    aggregator = SecondAggregator("bench:0")
    latencies_ms = [0.4 + (i % 97) * 0.013 for i in range(1000)]  # ~100 distinct histogram floors
    request: dict[str, Any] = {"request_type": "GET", "name": "/", "response_length": 2, "context": {}}
    request |= {"response": None, "exception": None, "start_time": 0.0, "url": "http://127.0.0.1/"}
    started = time.process_time()
    for i in range(samples):  # called with keywords, as Locust's EventHook.fire calls it
        aggregator.on_request(response_time=latencies_ms[i % 1000], **request)
    return (time.process_time() - started) / samples * 1e6


def serve() -> None:
    """The endpoint process: print ``PORT <n>`` and answer ``GET /`` until killed."""

    async def root(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", root)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock, backlog=1024).start()
        print(f"PORT {sock.getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_endpoint() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"the endpoint did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def run_locust(
    variant: str, locustfile: Path, host: str, seconds: int, users: int, workdir: Path, index: int
) -> Measurement:
    prefix = workdir / f"{variant}{index}"
    metrics = workdir / f"{variant}{index}.jsonl"
    files = str(locustfile) if variant == "bare" else f"{locustfile},{PLUGIN}"
    env = {k: v for k, v in os.environ.items() if k != "CHAOS_METRICS_FILE"}
    if variant == "plugin":
        env["CHAOS_METRICS_FILE"] = str(metrics)
    argv = [sys.executable, "-m", "locust", "-f", files, "--headless", "--only-summary", "--reset-stats"]
    argv += ["-u", str(users), "-r", str(min(users * 10, 100)), "-t", f"{seconds}s", "--host", host]
    argv += ["--csv", str(prefix), "--json-file", str(prefix), "--exit-code-on-error", "0"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"locust ({variant}) exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    with open(f"{prefix}_stats.csv", newline="") as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    requests = sum(entry["num_requests"] for entry in json.loads(Path(f"{prefix}.json").read_text()))
    stream_requests = None
    if variant == "plugin":
        lines = [json.loads(line) for line in metrics.read_text().splitlines()]
        stream_requests = sum(line["n"] for line in lines if line["type"] == "second")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measurement(variant, requests, float(total["Requests/s"]), cpu, stream_requests)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="run time of each Locust run")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs (bare, plugin)")
    parser.add_argument("--users", type=int, default=20, help="users of each run, all spawned at once")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0

    started = time.monotonic()
    endpoint, host = start_endpoint()
    rows: list[tuple[int, Measurement, Measurement]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="locust-overhead-") as tmp:
            workdir = Path(tmp)
            locustfile = workdir / "hammer.py"
            locustfile.write_text(LOCUSTFILE)
            print(f"endpoint {host}; {args.rounds} rounds of {args.seconds}s, {args.users} users", flush=True)
            for index in range(args.rounds):
                order = ("bare", "plugin") if index % 2 == 0 else ("plugin", "bare")
                runs = {v: run_locust(v, locustfile, host, args.seconds, args.users, workdir, index) for v in order}
                rows.append((index + 1, runs["bare"], runs["plugin"]))
                print(f"  round {index + 1} done ({' then '.join(order)})", flush=True)
    finally:
        endpoint.kill()
        endpoint.wait(timeout=10)

    print()
    print("round  bare req/s  plugin req/s  ratio  bare µs CPU/req  plugin µs CPU/req  stream n / Locust n")
    for index, bare, plugin in rows:
        print(
            f"{index:>5}  {bare.rps:>10.0f}  {plugin.rps:>12.0f}  {plugin.rps / bare.rps:>5.3f}"
            f"  {bare.cpu_us_per_request:>15.1f}  {plugin.cpu_us_per_request:>17.1f}"
            f"  {plugin.stream_requests} / {plugin.requests}"
        )
    ratios = [plugin.rps / bare.rps for _, bare, plugin in rows]
    cpu_ratios = [bare.cpu_us_per_request / plugin.cpu_us_per_request for _, bare, plugin in rows]
    bare_cpu_us = statistics.median(bare.cpu_us_per_request for _, bare, _ in rows)
    listener_us = listener_cost_us()
    print()
    print(
        f"median throughput ratio plugin/bare: {statistics.median(ratios):.3f}"
        f" (goal >= {GOAL_RATIO}; rounds {min(ratios):.3f}..{max(ratios):.3f})"
    )
    print(
        f"median requests per CPU second, plugin/bare: {statistics.median(cpu_ratios):.3f}"
        f" (rounds {min(cpu_ratios):.3f}..{max(cpu_ratios):.3f})"
    )
    print(
        f"listener alone: {listener_us:.2f} µs CPU per request = {listener_us / bare_cpu_us:.1%} of bare"
        f" Locust's {bare_cpu_us:.0f} µs (expected ratio {1 - listener_us / bare_cpu_us:.3f})"
    )
    print(f"took {time.monotonic() - started:.0f}s")
    if any(plugin.stream_requests != plugin.requests for _, _, plugin in rows):
        print("MISMATCH: the metrics stream did not count what Locust counted")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
