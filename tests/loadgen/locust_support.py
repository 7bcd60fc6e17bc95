"""Running Locust with the project's locustfiles against a fake gateway, and reading what it measured."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from loadgen.metrics_plugin import METRICS_FILE_ENV, new_histogram
from tests.support.helpers import first_line

REPO = Path(__file__).resolve().parents[2]
GATEWAY = Path(__file__).with_name("fake_gateway.py")
LOCUSTFILES = f"{REPO}/loadgen/trading.py,{REPO}/loadgen/metrics_plugin.py"
RUN_S = 4
NAMES = {"POST /orders", "DELETE /orders/{id}", "GET /orders/{id}", "GET /accounts/{id}"}


@contextmanager
def running_gateway(fail_every: int, slow_ms: int) -> Iterator[str]:
    """Start tests/loadgen/fake_gateway.py in its own process; yield its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(GATEWAY), "--fail-every", str(fail_every), "--slow-ms", str(slow_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = first_line(proc, "the fake gateway")
        assert line.startswith("PORT "), f"fake gateway did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


def locust_env(metrics: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != METRICS_FILE_ENV}
    if metrics is not None:
        env[METRICS_FILE_ENV] = str(metrics)
    return env


def locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", LOCUSTFILES, "--exit-code-on-error", "0", *args]


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def totals(lines: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for line in lines:
        if line["type"] == "second":
            counts[line["name"]][0] += line["n"]
            counts[line["name"]][1] += line["fail"]
    return {name: (n, fail) for name, (n, fail) in counts.items()}


def count_seconds(metrics: Path) -> int:
    return metrics.read_text().count('"type":"second"') if metrics.exists() else 0


def locust_final_totals(json_file: Path) -> dict[str, tuple[int, int]]:
    """Locust's own totals at exit (``--json-file``, written after the runner quits)."""
    return {e["name"]: (e["num_requests"], e["num_failures"]) for e in json.loads(json_file.read_text())}


def locust_csv_totals(prefix: Path) -> dict[str, tuple[int, int]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {
            row["Name"]: (int(row["Request Count"]), int(row["Failure Count"]))
            for row in csv.DictReader(f)
            if row["Name"] != "Aggregated"
        }


def merged_histogram(lines: list[dict[str, Any]], name: str) -> HdrHistogram:
    merged = new_histogram()
    for line in lines:
        if line["type"] == "second" and line["name"] == name:
            merged.add(HdrHistogram.decode(line["hist"].encode("ascii")))
    return merged


def assert_csv_within_lag(lines: list[dict[str, Any]], csv_totals: dict[str, tuple[int, int]], lag_s: int) -> None:
    """Locust rewrites _stats.csv once a second and not at exit (locust#2299), and a master's stats
    trail its workers' 3 s reports: the CSV holds at least every second over ``lag_s`` before the
    last one, and at most what we counted."""
    seconds = [line for line in lines if line["type"] == "second"]
    last = max(line["t"] for line in seconds)
    early = totals([line for line in seconds if line["t"] < last - lag_s])
    for name, (n, fail) in totals(seconds).items():
        csv_n, csv_fail = csv_totals.get(name, (0, 0))
        early_n, early_fail = early.get(name, (0, 0))
        assert early_n <= csv_n <= n, name
        assert early_fail <= csv_fail <= fail, name


def assert_clean_exit(proc: subprocess.CompletedProcess[str] | subprocess.Popen[str], stderr: str) -> None:
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
