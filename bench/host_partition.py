"""Benchmark: onset and rollback of a host partition (nftables), on this host and over SSH, side by side.

Usage: ``.venv/bin/python bench/host_partition.py [--rounds 15]`` (as root, with nftables and
openssh-server installed: ``bash scripts/setup.sh test``)

A TCP server holds a free loopback port. Each round, alternating which goes first, the real
`host.partition` injector cuts that port on this host, and on the same machine reached through a real
sshd on another free loopback port (its own host key and client key, in a temporary directory):

- onset: from the `inject` call until a new connection to the port no longer completes (polled every
  millisecond with 5 ms connect timeouts), the fault proven in effect from outside the injector;
- rollback: `rollback` (read counters, delete the table), then `verify_gone` (table absent), wall time.

Reported per place, median / min / max over the rounds. Exit 0 when it ran, 1 when it could not.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan
from injectors.host.partition import HostPartitionInjector, HostPartitionSpec
from stackspec.targets import ProcessInstance, ProcessTarget, SshHost, StackDescription


def _cut(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.005):
            return False
    except OSError:
        return True


def one_round(host: SshHost | None, port: int, tmp: Path) -> tuple[float, float]:
    instance = ProcessInstance(name="app-1", argv=["true"], host=host)
    desc = StackDescription(name="bench", targets={"app": ProcessTarget(instances=[instance])}, market_hours=None)
    ctx = EngineContext("bench-host-partition", LiveStack(desc, tmp / "state.json"), seed=1, bus=EventBus())
    injector = HostPartitionInjector(HostPartitionSpec(addresses=["127.0.0.1"], ports=[port]))
    refs = injector.resolve("app", None, ctx)
    plan = FaultPlan(kind=injector.kind, target="app", params=injector.spec.model_dump(), targets=refs)
    started = time.monotonic()
    results = injector.inject(plan, ctx)
    try:
        if not all(r.ok for r in results):
            raise RuntimeError(results[0].error)
        while not _cut(port):
            if time.monotonic() - started > 10:
                raise RuntimeError("the port was never cut")
            time.sleep(0.001)
        onset = time.monotonic() - started
    finally:
        undo_started = time.monotonic()
        undone = injector.rollback(plan, ctx)
        verified = injector.verify_gone(plan, ctx)
        undo = time.monotonic() - undo_started
    if not all(r.ok for r in [*undone, *verified]):
        raise RuntimeError("rollback or verification failed")
    return onset, undo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    from tests.injectors.sshd_server import start_sshd  # the tests' real sshd on a loopback port

    with tempfile.TemporaryDirectory(prefix="bench-hostnet-") as tmp_dir:
        tmp = Path(tmp_dir)
        server = socket.create_server(("127.0.0.1", 0))
        server.listen(512)
        port = server.getsockname()[1]
        try:
            sshd = start_sshd(tmp / "sshd")
        except BaseException as exc:  # pytest.skip/fail raise BaseException subclasses
            print(f"cannot start sshd: {exc}", file=sys.stderr)
            return 1
        places: dict[str, SshHost | None] = {"this host": None, "over SSH": sshd.host()}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in places}
        try:
            for n in range(args.rounds):
                order = list(places) if n % 2 == 0 else list(places)[::-1]
                for name in order:
                    times[name].append(one_round(places[name], port, tmp))
        finally:
            sshd.stop()
            server.close()
    print(f"host.partition, {args.rounds} rounds each, median (min-max), ms")
    print("| where | onset | rollback + verify |")
    print("|---|---|---|")
    for name, rounds in times.items():
        cells = []
        for i in (0, 1):
            values = [r[i] * 1000 for r in rounds]
            cells.append(f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
