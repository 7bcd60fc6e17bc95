"""Benchmark: one host.partition across 50 namespace hosts over SSH, `parallel` 1 against 16, side by side.

Usage: ``.venv/bin/python bench/ssh_fanout.py [--hosts 50] [--rounds 1]`` (as root, with iproute2,
nftables and openssh-server installed: ``bash scripts/setup.sh test``)

The hosts are made as the hosts profile makes them (`tradingstack.hosts`): network namespaces on one
bridge, each with its own address and sshd. A stack description names one instance on each host. Each
round, for `parallel` 1 and 16 (alternating which goes first), the real `host.partition` injector
partitions every host from an unused address of the /24 (harmless: nothing lives there), through the
engine's own calls, each step with its own SSH connections as in a run:

- resolve: pick the hosts, render each table and check it with `nft -c` on its host;
- inject: apply the table on every host (and see it there);
- rollback: read its counters and delete it on every host;
- verify: prove it absent on every host.

Wall time per step, the median over the rounds, and how many hosts each step recorded a result for
(every host must have one, all ok). Exit 0 when it ran, 1 when it could not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan, TargetResult
from injectors.host.partition import HostPartitionInjector, HostPartitionSpec
from injectors.selection import Selection
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tradingstack import hosts

STEPS = ("resolve", "inject", "rollback", "verify")


def one_round(network: hosts.Network, parallel: int, tmp: Path) -> dict[str, float]:
    instances = [ProcessInstance(name=h.name, argv=["true"], host=network.ssh(h.name)) for h in network.hosts]
    desc = StackDescription(name="bench", targets={"app": ProcessTarget(instances=instances)}, market_hours=None)
    ctx = EngineContext(f"bench-fanout-{parallel}", LiveStack(desc, tmp / "state.json"), seed=1, bus=EventBus())
    unused = network.subnet.rpartition(".")[0] + ".250"
    injector = HostPartitionInjector(HostPartitionSpec(addresses=[unused], parallel=parallel))
    took: dict[str, float] = {}

    def timed(step: str, call: Callable[[], list[TargetResult]]) -> None:
        started = time.monotonic()
        results = call()
        took[step] = time.monotonic() - started
        failed = [r for r in results if not r.ok]
        if len(results) != len(network.hosts) or failed:
            raise RuntimeError(f"{step}: {len(results)} result(s), failed: {failed[:1]}")

    started = time.monotonic()
    refs = injector.resolve("app", Selection(all=True), ctx)
    took["resolve"] = time.monotonic() - started
    if len(refs) != len(network.hosts):
        raise RuntimeError(f"resolve found {len(refs)} hosts, not {len(network.hosts)}")
    plan = FaultPlan(kind=injector.kind, target="app", params=injector.spec.model_dump(), targets=refs)
    try:
        timed("inject", lambda: injector.inject(plan, ctx))
    finally:
        timed("rollback", lambda: injector.rollback(plan, ctx))
        timed("verify", lambda: injector.verify_gone(plan, ctx))
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    levels = (1, 16)
    times: dict[int, list[dict[str, float]]] = {p: [] for p in levels}
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp_dir:
        tmp = Path(tmp_dir)
        try:
            started = time.monotonic()
            network = hosts.create(tmp / "stack", [f"h{n}" for n in range(args.hosts)], timeout_s=120)
            print(f"{args.hosts} namespace hosts with sshd made in {time.monotonic() - started:.1f} s", flush=True)
        except hosts.HostsError as exc:
            print(f"cannot make the hosts: {exc}", file=sys.stderr)
            return 1
        try:
            for n in range(args.rounds):
                for parallel in levels if n % 2 == 0 else levels[::-1]:
                    times[parallel].append(one_round(network, parallel, tmp))
                    print(f"round {n + 1}, parallel {parallel}: {times[parallel][-1]}", flush=True)
        except RuntimeError as exc:
            print(f"bench failed: {exc}", file=sys.stderr)
            return 1
        finally:
            hosts.destroy(tmp / "stack")
    print(f"\nhost.partition across {args.hosts} hosts over SSH, median of {args.rounds} round(s), s")
    print("| parallel | " + " | ".join(STEPS) + " | hosts with a result |")
    print("|---|" + "---|" * (len(STEPS) + 1))
    for parallel, rounds in times.items():
        cells = [f"{statistics.median(r[s] for r in rounds):.2f}" for s in STEPS]
        print(f"| {parallel} | " + " | ".join(cells) + f" | {args.hosts} of {args.hosts}, every step |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
