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
import asyncio
import contextlib
import math
import os
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
MESSAGE_BYTES = 64
CHUNK_BYTES = 256 * 1024
TOXIC_LATENCY_MS = 100
TOXIC_BLOCK = 25  # toxic round trips, then as many bare asyncio timers, and again
GOAL_ADDED_P50_MS = 0.2
GOAL_PROXIED_MBPS = 300.0
GOAL_TOXIC_P99_ERROR_MS = 2.0
SOCKET_TIMEOUT_S = 10.0
START_TIMEOUT_S = 15.0
_COUNT = struct.Struct("!Q")


# --- the echo + sink server process ----------------------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError(f"peer closed after {len(buf)} of {size} bytes")
        buf += chunk
    return bytes(buf)


def _echo(conn: socket.socket) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := conn.recv(65536):
            conn.sendall(data)


def _sink(conn: socket.socket) -> None:
    """Read an 8-byte length, then that many bytes (discarded); answer with the count received."""
    with conn:
        buf = bytearray(1024 * 1024)
        view = memoryview(buf)
        expected = _COUNT.unpack(_recv_exact(conn, _COUNT.size))[0]
        received = 0
        while received < expected:
            got = conn.recv_into(view, min(len(buf), expected - received))
            if not got:
                break
            received += got
        conn.sendall(_COUNT.pack(received))
        while conn.recv(65536):  # wait for the client to close first
            pass


def _serve_forever(listener: socket.socket, handler: Callable[[socket.socket], None]) -> None:
    def guarded(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # a client gone mid-way (a bench loop that hit its time limit)
            handler(conn)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=guarded, args=(conn,), daemon=True).start()


def serve() -> None:
    """The echo + sink process: print ``PORTS <echo> <sink>``, serve until stdin closes."""
    ports: list[int] = []
    for handler in (_echo, _sink):
        listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        ports.append(listener.getsockname()[1])
        threading.Thread(target=_serve_forever, args=(listener, handler), daemon=True).start()
    print(f"PORTS {ports[0]} {ports[1]}", flush=True)
    sys.stdin.read()  # the bench closes our stdin (or dies): stop


# --- processes --------------------------------------------------------------------------------


def _first_line(proc: subprocess.Popen[str], what: str) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    line = proc.stdout.readline() if ready else ""
    if not line:
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"{what} did not start within {START_TIMEOUT_S:.0f}s (exit {proc.returncode})")
    return line.strip()


def start_peer() -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    line = _first_line(proc, "the echo/sink server")
    if not line.startswith("PORTS "):
        proc.kill()
        raise RuntimeError(f"the echo/sink server said {line!r}")
    _, echo, sink = line.split()
    return proc, int(echo), int(sink)


def start_chaosproxy(log: IO[str], profile: Path | None) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", str(profile)]
    argv += ["-m", "chaosproxy", "serve", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True)
    line = _first_line(proc, "chaosproxy")
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"chaosproxy said {line!r}")
    return proc, "http://" + line.removeprefix("listening on ")


def stop(proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float | None:
    """User + system CPU time of all processes so far, summed over the cores, from /proc/stat.

    Interrupt and softirq time (where much of loopback's work lands) is left out, as it is from a
    process's own times, so that this minus our processes' times is what other processes used.
    """
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    except (OSError, ValueError):
        return None
    return sum(ticks) / os.sysconf("SC_CLK_TCK")  # user, nice, system


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


# --- client measurements ----------------------------------------------------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def round_trips(sock: socket.socket, trips: int, warmup: int, limit_s: float) -> list[float]:
    """RTTs in ms of `trips` 64-byte echoes on a connection, after `warmup` unrecorded ones."""
    payload = bytes(range(MESSAGE_BYTES))
    samples: list[float] = []
    deadline = time.monotonic() + limit_s
    for index in range(warmup + trips):
        if time.monotonic() > deadline:
            print(f"  (time limit: {len(samples)} of {trips} round trips)", flush=True)
            break
        started = time.perf_counter_ns()
        sock.sendall(payload)
        answer = _recv_exact(sock, MESSAGE_BYTES)
        elapsed_ms = (time.perf_counter_ns() - started) / 1e6
        if answer != payload:
            raise RuntimeError(f"echo at {sock.getpeername()} answered other bytes")
        if index >= warmup:
            samples.append(elapsed_ms)
    if not samples and trips:
        raise RuntimeError(f"no round trip completed with {sock.getpeername()} within {limit_s:.0f}s")
    return samples


def transfer(port: int, total: int, limit_s: float) -> tuple[float, bool]:
    """MB/s of `total` bytes sent to the sink, until it confirms them; and whether all were sent in time."""
    chunk = memoryview(os.urandom(CHUNK_BYTES))
    deadline = time.monotonic() + limit_s
    sent = 0
    with _connect(port) as sock:
        started = time.perf_counter()
        sock.sendall(_COUNT.pack(total))
        while sent < total:
            if time.monotonic() > deadline:
                print(f"  (time limit: {sent / 1e6:.0f} of {total / 1e6:.0f} MB sent)", flush=True)
                return sent / 1e6 / (time.perf_counter() - started), False
            piece = chunk[: min(CHUNK_BYTES, total - sent)]
            sock.sendall(piece)
            sent += len(piece)
        received = _COUNT.unpack(_recv_exact(sock, _COUNT.size))[0]
        elapsed = time.perf_counter() - started
    if received != total:
        raise RuntimeError(f"sink on port {port} received {received} of {total} bytes")
    return total / 1e6 / elapsed, True


def timer_overshoot(count: int, delay_s: float, limit_s: float) -> list[float]:
    """How late, in ms, `count` ``asyncio.sleep(delay_s)`` calls wake up: the platform's timer floor."""

    async def sleeps() -> list[float]:
        late: list[float] = []
        deadline = time.monotonic() + limit_s
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            await asyncio.sleep(delay_s)
            late.append((time.perf_counter() - started - delay_s) * 1000)
        return late

    return asyncio.run(sleeps())


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Results:
    rtt: dict[str, list[float]] = field(default_factory=lambda: {"direct": [], "proxied": []})
    mbps: dict[str, list[float]] = field(default_factory=lambda: {"direct": [], "proxied": []})
    proxy_cpu_share: list[float] = field(default_factory=list)  # proxy CPU s / wall s, proxied transfers >= 0.2 s
    complete: bool = True
    toxic_rtt: list[float] = field(default_factory=list)
    timer_late: list[float] = field(default_factory=list)  # ms, asyncio.sleep(0.1) in this process
    others_cores: float | None = None  # mean cores busy with processes not ours during the run


@dataclass(frozen=True)
class Settings:
    rounds: int
    mb: int
    trips: int
    warmup: int
    toxic_trips: int
    loop_limit_s: float


def measure(settings: Settings, ports: dict[str, int], proxy_pid: int, results: Results) -> None:
    for index in range(settings.rounds):
        order = ("direct", "proxied") if index % 2 == 0 else ("proxied", "direct")
        line: list[str] = []
        for path in order:
            with _connect(ports[f"echo_{path}"]) as sock:
                samples = round_trips(sock, settings.trips, settings.warmup, settings.loop_limit_s)
            results.rtt[path] += samples
            line.append(f"{path} RTT p50 {percentile(samples, 50):.3f} p99 {percentile(samples, 99):.3f} ms")
        for path in order:
            cpu_before, wall_before = cpu_seconds(proxy_pid), time.monotonic()
            rate, complete = transfer(ports[f"sink_{path}"], settings.mb * 1_000_000, settings.loop_limit_s)
            cpu_after, wall = cpu_seconds(proxy_pid), time.monotonic() - wall_before
            results.complete &= complete
            results.mbps[path].append(rate)
            share = ""
            if path == "proxied" and cpu_before is not None and cpu_after is not None and wall >= 0.2:
                results.proxy_cpu_share.append((cpu_after - cpu_before) / wall)
                share = f" (proxy CPU {results.proxy_cpu_share[-1]:.0%})"
            line.append(f"{path} {rate:.0f} MB/s{share}")
        print(f"  round {index + 1}: " + "; ".join(line), flush=True)
    deadline = time.monotonic() + settings.loop_limit_s
    with _connect(ports["echo_toxic"]) as sock:
        round_trips(sock, 3, 0, settings.loop_limit_s)  # warm-up
        for start in range(0, settings.toxic_trips, TOXIC_BLOCK):
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"  (time limit: {len(results.toxic_rtt)} of {settings.toxic_trips} toxic round trips)")
                break
            count = min(TOXIC_BLOCK, settings.toxic_trips - start)
            results.toxic_rtt += round_trips(sock, count, 0, left / 2)
            results.timer_late += timer_overshoot(count, TOXIC_LATENCY_MS / 1000, left / 2)
    print(f"  latency toxic: {len(results.toxic_rtt)} round trips", flush=True)


def report(results: Results) -> None:
    direct, proxied = results.rtt["direct"], results.rtt["proxied"]
    d50, d99, p50, p99 = (percentile(s, q) for s in (direct, proxied) for q in (50, 99))
    added50, added99 = p50 - d50, p99 - d99
    direct_mbps, proxied_mbps = (statistics.median(results.mbps[p]) for p in ("direct", "proxied"))
    expected = d50 + TOXIC_LATENCY_MS  # the toxic's RTT if it were exact
    errors = [rtt - expected for rtt in results.toxic_rtt]

    def met(ok: bool) -> str:
        return "yes" if ok else "NO"

    rows = [
        ("metric", "direct", "proxied", "added / ratio", "goal", "met"),
        (
            f"RTT p50, {MESSAGE_BYTES} B (ms)",
            f"{d50:.3f}",
            f"{p50:.3f}",
            f"+{added50:.3f} ms",
            f"added <= {GOAL_ADDED_P50_MS} ms",
            met(added50 <= GOAL_ADDED_P50_MS),
        ),
        (f"RTT p99, {MESSAGE_BYTES} B (ms)", f"{d99:.3f}", f"{p99:.3f}", f"+{added99:.3f} ms", "-", "-"),
        (
            "throughput (MB/s)",
            f"{direct_mbps:.0f}",
            f"{proxied_mbps:.0f}",
            f"x{proxied_mbps / direct_mbps:.2f}",
            f"proxied >= {GOAL_PROXIED_MBPS:.0f} MB/s",
            met(proxied_mbps >= GOAL_PROXIED_MBPS),
        ),
    ]
    if errors:
        e50, e99 = percentile(errors, 50), percentile(errors, 99)
        toxic = f"{TOXIC_LATENCY_MS} ms toxic RTT"
        goal = f"|error| <= {GOAL_TOXIC_P99_ERROR_MS} ms"
        ok = met(max(abs(e50), abs(e99)) <= GOAL_TOXIC_P99_ERROR_MS)
        rows.append((f"{toxic} p50 (ms)", f"{expected:.3f}", f"{expected + e50:.3f}", f"{e50:+.3f} ms", "-", "-"))
        rows.append((f"{toxic} p99 (ms)", f"{expected:.3f}", f"{expected + e99:.3f}", f"{e99:+.3f} ms", goal, ok))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, help="rounds of direct + proxied measurements (default 3; quick 1)")
    parser.add_argument("--mb", type=int, help="MB (10^6 bytes) per transfer (default 512; quick 16)")
    parser.add_argument("--trips", type=int, help="64-byte round trips per path per round (default 2000; quick 200)")
    parser.add_argument("--toxic-trips", type=int, help="round trips with the 100 ms toxic (default 300; quick 10)")
    parser.add_argument("--loop-limit", type=float, default=120.0, help="seconds any one loop may take (120)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--profile", type=Path, help="run chaosproxy under cProfile, stats written to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0

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

    sys.path.insert(0, str(REPO))
    from clients.toxiproxy import ToxiproxyClient, ToxiproxyError

    started = time.monotonic()
    results = Results()
    machine_before, own_before = machine_cpu_seconds(), own_cpu_seconds()
    with tempfile.TemporaryFile("w+") as log:
        peer: subprocess.Popen[str] | None = None
        proxy: subprocess.Popen[str] | None = None
        try:
            peer, echo, sink = start_peer()
            proxy, api = start_chaosproxy(log, args.profile)
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
            print(f"could not run: {exc}", file=sys.stderr)
            log.seek(0)
            tail = log.read()[-3000:]
            if tail:
                print(f"chaosproxy log:\n{tail}", file=sys.stderr)
            return 1
        finally:
            if proxy is not None:
                stop(proxy)
            if peer is not None:
                assert peer.stdin is not None
                peer.stdin.close()
                stop(peer)
    report(results)
    if args.profile is not None:
        print(f"chaosproxy profile (cProfile, figures above include its cost): {args.profile}")
    print(f"took {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
