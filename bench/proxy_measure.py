"""The measuring machinery of bench/proxy_overhead.py: its echo + sink peer, its processes, the client's loops.

``bench/proxy_overhead.py`` is the entry point (its docstring describes the run); it starts this
module's ``serve`` in a process of its own (``proxy_overhead.py --serve``), chaosproxy beside it,
and measures with ``measure`` into a ``Results``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
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


def start_peer(script: str) -> tuple[subprocess.Popen[str], int, int]:
    """Run ``script --serve`` (the entry point, which calls `serve`); its process and echo and sink ports."""
    proc = subprocess.Popen(
        [sys.executable, script, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
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
