"""Benchmark: one Kubernetes fault across 1,000 pods (and 1,000 nodes), applied sequentially vs in parallel.

Usage: ``.venv/bin/python bench/k8s_fanout.py [--pods 1000] [--nodes 1000] [--parallel 1,16,32]
[--latency-ms 0,5] [--rounds 3]``

Starts the fake Kubernetes API server of the tests (tests/injectors/fake_kube.py) in its own process
on 127.0.0.1, with a Deployment of ``--pods`` replicas (replacement pods appear 50 ms after a delete
and are Ready 50 ms later) and ``--nodes`` nodes. For each parallelism, runs through the real
injectors and the official client: ``pod.delete`` with ``select: {all: true}`` and grace period 0
(inject = one DELETE per pod; rollback = wait until the Deployment has every replica Ready again;
verify), and ``node.cordon`` of every node (inject = one PATCH per node; rollback = one PATCH per
node; verify = one GET per node). Prints the median of ``--rounds`` for apply, rollback and verify
side by side, and the speed-up over parallelism 1. The goal is <= 5 s each for 1,000 targets.

On loopback the fake answers in well under a millisecond and both ends share two cores, so
parallelism gains little there; ``--latency-ms`` adds a delay to every answer (outside the fake's
lock), standing in for the round trip to a real API server, where parallelism is what keeps a
1,000-pod fault within seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.context import EngineContext  # noqa: E402
from engine.events import EventBus  # noqa: E402
from engine.stack import LiveStack  # noqa: E402
from injectors.base import FaultPlan, FaultSpec, Injector, TargetResult  # noqa: E402
from injectors.kube.node_cordon import NodeCordonInjector, NodeCordonSpec  # noqa: E402
from injectors.kube.pod_delete import PodDeleteInjector, PodDeleteSpec  # noqa: E402
from injectors.selection import Selection  # noqa: E402
from stackspec.targets import KubernetesAccess, KubernetesTarget, StackDescription  # noqa: E402

NAMESPACE = "bench"
FAKE = [sys.executable, "-m", "tests.injectors.fake_kube"]


def start_fake(pods: int, nodes: int, latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*FAKE, "--namespace", NAMESPACE, "--pods", str(pods), "--nodes", str(nodes), "--latency-ms", str(latency_ms)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"the fake API server did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def context(url: str) -> EngineContext:
    api = KubernetesAccess(api_url=url, timeout_s=10.0)
    targets: dict[str, Any] = {
        "pods": KubernetesTarget(
            api=api, resource="pods", namespace=NAMESPACE, label_selector="app=web", deployment="web"
        ),
        "nodes": KubernetesTarget(api=api, resource="nodes", label_selector="pool=bench"),
    }
    return EngineContext("bench", LiveStack(StackDescription(name="bench", targets=targets), None), 1, EventBus())


def timed(step: Any) -> tuple[float, list[TargetResult]]:
    started = time.perf_counter()
    results = step()
    return time.perf_counter() - started, results


def one_round(injector: Injector[FaultSpec], target: str, ctx: EngineContext) -> tuple[float, float, float]:
    plan = FaultPlan(kind=injector.kind, target=target, targets=injector.resolve(target, Selection(all=True), ctx))
    times = []
    for step in (injector.inject, injector.rollback, injector.verify_gone):
        took, results = timed(lambda step=step: step(plan, ctx))
        failed = [r for r in results if not r.ok]
        if failed:
            raise SystemExit(f"{injector.kind} {step.__name__}: {len(failed)} target(s) failed, e.g. {failed[0].error}")
        times.append(took)
    return times[0], times[1], times[2]


def measure(url: str, args: argparse.Namespace, latency_ms: float) -> list[tuple[str, int, int, float, Any]]:
    ctx = context(url)
    rows = []
    for kind, target, count in (("pod.delete", "pods", args.pods), ("node.cordon", "nodes", args.nodes)):
        if count == 0:
            continue
        for parallel in [int(p) for p in args.parallel.split(",")]:
            injector: Injector[FaultSpec] = (
                PodDeleteInjector(PodDeleteSpec(grace_period_s=0, parallelism=parallel))
                if kind == "pod.delete"
                else NodeCordonInjector(NodeCordonSpec(parallelism=parallel))
            )
            rounds = [one_round(injector, target, ctx) for _ in range(args.rounds)]
            medians = tuple(statistics.median(r[i] for r in rounds) for i in range(3))
            rows.append((kind, count, parallel, latency_ms, medians))
            print(f"  {kind} x{count}, {latency_ms:g} ms, parallel {parallel}: done", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--parallel", default="1,16,32", help="comma-separated parallelism values")
    parser.add_argument("--latency-ms", default="0,5", help="comma-separated latencies added to every answer")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for latency_ms in [float(v) for v in args.latency_ms.split(",")]:
        proc, url = start_fake(args.pods, args.nodes, latency_ms)
        try:
            rows.extend(measure(url, args, latency_ms))
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=10)
    print(f"median of {args.rounds} rounds, fake API server in its own process on 127.0.0.1")
    header = f"{'fault':<12} {'targets':>7} {'latency':>8} {'parallel':>8} {'apply':>8} {'rollback':>9} {'verify':>8}"
    print(header + f" {'speed-up':>9}")
    base: dict[tuple[str, float], float] = {}
    for kind, count, parallel, latency_ms, (apply_s, rollback_s, verify_s) in rows:
        total = apply_s + rollback_s + verify_s
        base.setdefault((kind, latency_ms), total)
        print(
            f"{kind:<12} {count:>7} {latency_ms:>6g}ms {parallel:>8} {apply_s:>7.2f}s {rollback_s:>8.2f}s "
            f"{verify_s:>7.2f}s {base[(kind, latency_ms)] / total:>8.1f}x"
        )


if __name__ == "__main__":
    main()
