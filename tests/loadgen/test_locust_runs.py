"""Real Locust runs of loadgen/trading.py with the metrics plugin against a local fake gateway."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.loadgen.locust_support import (
    LOCUSTFILES,
    NAMES,
    REPO,
    RUN_S,
    assert_clean_exit,
    assert_csv_within_lag,
    count_seconds,
    locust,
    locust_csv_totals,
    locust_env,
    locust_final_totals,
    merged_histogram,
    read_lines,
    running_gateway,
    totals,
)
from tests.support.helpers import free_port

pytestmark = pytest.mark.slow


def test_local_run_streams_seconds_that_match_locusts_own_stats(tmp_path: Path) -> None:
    metrics, prefix, final = tmp_path / "metrics.jsonl", tmp_path / "run", tmp_path / "final"
    load = ["--headless", "-u", "10", "-r", "10", "-t", f"{RUN_S}s"]
    reports = ["--csv", str(prefix), "--json-file", str(final)]
    with running_gateway(fail_every=10, slow_ms=20) as host:
        before = time.time()
        proc = subprocess.run(
            locust(*load, "--host", host, *reports),
            cwd=REPO,
            env=locust_env(metrics),
            capture_output=True,
            text=True,
            timeout=90,
        )
        after = time.time()
    assert_clean_exit(proc, proc.stderr)

    lines = read_lines(metrics)
    assert [line["type"] for line in (lines[0], lines[-1])] == ["start", "stop"]
    assert [line["type"] for line in lines[1:-1]] == ["second"] * (len(lines) - 2)
    start, stop = lines[0], lines[-1]
    assert before <= start["t"] <= stop["t"] <= after
    seconds = lines[1:-1]
    assert {line["src"] for line in lines} == {start["src"]}
    assert all(isinstance(line["t"], int) and int(start["t"]) <= line["t"] <= stop["t"] for line in seconds)
    assert len({(line["t"], line["name"]) for line in seconds}) == len(seconds)  # one line per name/second
    # Seconds after the ramp-up (1 s) and before the users stop report all 10 users.
    assert all(line["users"] == 10 for line in seconds if int(start["t"]) + 2 <= line["t"] < int(stop["t"]))

    ours = totals(lines)
    assert set(ours) == NAMES
    assert ours == locust_final_totals(Path(f"{final}.json"))
    assert_csv_within_lag(lines, locust_csv_totals(prefix), lag_s=1)

    posts, post_failures = ours["POST /orders"]
    assert post_failures == pytest.approx(posts / 10, abs=2)
    errors: dict[str, int] = defaultdict(int)
    for line in seconds:
        for error, count in line["errors"].items():
            errors[error] += count
    assert errors == {"CatchResponseError('HTTP 503')": post_failures}

    for name, (n, fail) in ours.items():
        assert merged_histogram(lines, name).get_total_count() == n - fail, name
    slow = merged_histogram(lines, "GET /accounts/{id}")
    assert 20_000 <= slow.get_value_at_percentile(50) < 60_000
    assert merged_histogram(lines, "GET /orders/{id}").get_value_at_percentile(50) < 20_000


def test_without_metrics_file_the_plugin_writes_nothing(tmp_path: Path) -> None:
    with running_gateway(fail_every=0, slow_ms=0) as host:
        # Locust's default exit code: any failure or error in the plugin would make it non-zero.
        argv = [sys.executable, "-m", "locust", "-f", LOCUSTFILES, "--headless", "-u", "5", "-t", "2s"]
        proc = subprocess.run(
            [*argv, "--host", host],
            cwd=tmp_path,
            env=locust_env(None),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert_clean_exit(proc, proc.stderr)
    assert "POST /orders" in proc.stderr  # the load did run
    assert list(tmp_path.iterdir()) == []


def test_a_killed_locust_loses_at_most_the_last_second_or_two(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    with running_gateway(fail_every=0, slow_ms=0) as host:
        proc = subprocess.Popen(
            locust("--headless", "-u", "10", "-r", "10", "-t", "60s", "--host", host),
            cwd=REPO,
            env=locust_env(metrics),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and count_seconds(metrics) < 8:
                time.sleep(0.1)
            time.sleep(1.6 - time.time() % 1)  # kill 0.6 s into a second: its predecessor is flushed
            killed_at = time.time()
            proc.kill()
        finally:
            proc.kill()
            proc.wait(timeout=10)

    lines = read_lines(metrics)  # every line complete: one write per line
    assert lines[0]["type"] == "start"
    assert {line["type"] for line in lines[1:]} == {"second"}
    last = max(line["t"] for line in lines[1:])
    assert int(killed_at) - 2 <= last <= int(killed_at) - 1


def test_distributed_master_writes_what_both_workers_measured(tmp_path: Path) -> None:
    metrics, prefix, final = tmp_path / "metrics.jsonl", tmp_path / "run", tmp_path / "final"
    port = str(free_port())
    load = ["--headless", "-u", "10", "-r", "10", "-t", f"{RUN_S}s"]
    reports = ["--csv", str(prefix), "--json-file", str(final)]
    master_args = [
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        port,
        "--expect-workers",
        "2",
    ]
    worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", port]
    procs: list[subprocess.Popen[str]] = []
    with running_gateway(fail_every=10, slow_ms=20) as host:
        try:
            # Only the master gets the metrics file: it tells the workers to measure.
            for argv, metrics_file in [
                (locust(*master_args, *load, "--host", host, *reports), metrics),
                (locust(*worker_args), None),
                (locust(*worker_args), None),
            ]:
                procs.append(
                    subprocess.Popen(
                        argv,
                        cwd=REPO,
                        env=locust_env(metrics_file),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            outputs = [proc.communicate(timeout=90)[1] for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
    for proc, stderr in zip(procs, outputs, strict=True):
        assert_clean_exit(proc, stderr)

    lines = read_lines(metrics)
    start, stop = lines[0], lines[-1]
    assert (start["type"], stop["type"], start["src"]) == ("start", "stop", stop["src"])
    seconds = lines[1:-1]
    assert {line["type"] for line in seconds} == {"second"}
    worker_srcs = {line["src"] for line in seconds}
    assert len(worker_srcs) == 2
    assert start["src"] not in worker_srcs
    assert all(int(start["t"]) <= line["t"] <= stop["t"] for line in seconds)

    ours = totals(lines)
    assert set(ours) == NAMES
    assert ours == locust_final_totals(Path(f"{final}.json"))
    assert_csv_within_lag(lines, locust_csv_totals(prefix), lag_s=4)
    assert 20_000 <= merged_histogram(lines, "GET /accounts/{id}").get_value_at_percentile(50) < 60_000
