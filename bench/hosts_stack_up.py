"""Benchmark: `chaos.py stack up --profile hosts` against `chaos.py stack up --profile ha`, side by side.

Usage: ``.venv/bin/python bench/hosts_stack_up.py [--rounds 3]`` (as root, with iproute2, openssh-server,
redis-server and ZooKeeper installed: ``bash scripts/setup.sh test``)

Each round starts both profiles, alternating which goes first, each in a fresh temporary directory, and
times the `stack up` command from its start until it exits (every node healthy, one matching-engine
leader); `stack down` follows each before the next. The hosts profile also makes its 8 network
namespaces, bridge and sshds, and starts every node over SSH; ha starts them here, behind proxies.
Reported: median / min / max per profile and the ratio of the medians. Exit 0 when it ran, 1 when not.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("hosts", "ha")


def chaos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "chaos.py"), *args], capture_output=True, text=True, timeout=300, check=False
    )


def time_up(profile: str) -> float:
    """Seconds `stack up --profile PROFILE` took; the stack is down again when this returns."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{profile}-") as directory:
        started = time.monotonic()
        up = chaos("stack", "up", "--profile", profile, "--dir", directory)
        took = time.monotonic() - started
        down = chaos("stack", "down", "--dir", directory)
        if up.returncode != 0:
            raise RuntimeError(f"stack up --profile {profile} failed: {up.stdout}{up.stderr}")
        if down.returncode != 0:
            raise RuntimeError(f"stack down ({profile}) failed: {down.stdout}{down.stderr}")
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {p: [] for p in PROFILES}
    try:
        for n in range(args.rounds):
            order = PROFILES if n % 2 == 0 else tuple(reversed(PROFILES))
            for profile in order:
                times[profile].append(time_up(profile))
                print(f"round {n + 1}: {profile:<5} up in {times[profile][-1]:.2f} s", flush=True)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(f"\nstack up, {args.rounds} rounds   median    min    max")
    for profile in PROFILES:
        t = times[profile]
        print(f"  --profile {profile:<5}      {statistics.median(t):6.2f} {min(t):6.2f} {max(t):6.2f}  s")
    ratio = statistics.median(times["hosts"]) / statistics.median(times["ha"])
    print(f"hosts / ha (medians): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
