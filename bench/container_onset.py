"""Benchmark: fault onset of a container kill vs a process kill — from the kill call to the fault in effect.

Usage: ``export $(bash scripts/podman-setup.sh); .venv/bin/python bench/container_onset.py [--rounds 7]``

The same small HTTP service (``python -m http.server`` on 127.0.0.1) runs once as a plain process and
once as a container on the Docker-API engine at $DOCKER_HOST (the containers profile's way: host
binaries, host network). Each round, alternating which goes first, the real injectors kill each
one with SIGKILL (``process.kill`` and ``container.kill``) while a watcher thread polls, every
millisecond from just before the call: the service's host PID (gone = absent or a zombie) and its
port (refusing connections). Then the rollback brings it back and the next round waits until
healthy. Reported per kind, median / min / max over the rounds:

- kill call: until the injector's ``inject`` returned (it waits until the kill is confirmed);
- PID gone: until the host process had exited;
- port refuses: until a connection to the service was refused;
- rollback: until the injector's ``rollback`` returned with the service healthy again.

Exit 0 when the run completed, 1 when it could not run (no engine), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clients.container_engine import ContainerEngineError, engine, engine_url  # noqa: E402
from clients.health import wait_healthy  # noqa: E402
from clients.procs import reap, spawn, start_time_of  # noqa: E402
from engine.context import EngineContext  # noqa: E402
from engine.events import EventBus  # noqa: E402
from engine.stack import LiveStack  # noqa: E402
from injectors.base import FaultPlan, FaultSpec, Injector  # noqa: E402
from injectors.container.kill import ContainerKillInjector, ContainerKillSpec  # noqa: E402
from injectors.process.kill import ProcessKillInjector, ProcessKillSpec  # noqa: E402
from injectors.selection import Selection  # noqa: E402
from stackspec.targets import (  # noqa: E402
    ContainerTarget,
    HttpHealth,
    ProcessInstance,
    ProcessTarget,
    StackDescription,
)
from tradingstack import containers  # noqa: E402
from tradingstack.topology import free_ports  # noqa: E402

POLL_S = 0.001
WATCH_LIMIT_S = 10.0


@dataclass
class Onset:
    call_s: float
    pid_gone_s: float | None
    refused_s: float | None
    rollback_s: float


@dataclass
class Kind:
    label: str
    injector: Injector[FaultSpec]
    ctx: EngineContext
    target: str
    pid: Any  # () -> host PID of the service now
    port: int
    rounds: list[Onset] = field(default_factory=list)


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def measure(kind: Kind) -> Onset:
    plan = FaultPlan(
        kind=kind.injector.kind,
        target=kind.target,
        select=Selection(all=True),
        targets=kind.injector.resolve(kind.target, Selection(all=True), kind.ctx),
    )
    pid = int(kind.pid())
    seen: dict[str, float] = {}
    go = threading.Event()
    t0 = 0.0

    def watch() -> None:
        go.wait()
        while time.monotonic() - t0 < WATCH_LIMIT_S and len(seen) < 2:
            now = time.monotonic() - t0
            if "pid" not in seen and start_time_of(pid) is None:
                seen["pid"] = now
            if "port" not in seen and refused(kind.port):
                seen["port"] = now
            time.sleep(POLL_S)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    go.set()
    (result,) = kind.injector.inject(plan, kind.ctx)
    call_s = time.monotonic() - t0
    watcher.join(WATCH_LIMIT_S + 1)
    if not result.ok:
        raise RuntimeError(f"{kind.label}: inject failed: {result.error}")
    started = time.monotonic()
    (undone,) = kind.injector.rollback(plan, kind.ctx)
    if not undone.ok:
        raise RuntimeError(f"{kind.label}: rollback failed: {undone.error}")
    return Onset(call_s, seen.get("pid"), seen.get("port"), time.monotonic() - started)


def row(name: str, values: list[list[float | None]]) -> str:
    cells = []
    for series in values:
        got = [v for v in series if v is not None]
        if not got:
            cells.append("n/a")
            continue
        cells.append(f"{statistics.median(got) * 1000:.1f} ms ({min(got) * 1000:.1f}-{max(got) * 1000:.1f})")
    medians = [statistics.median([v for v in s if v is not None]) for s in values if any(v is not None for v in s)]
    ratio = f"{medians[1] / medians[0]:.1f}x" if len(medians) == 2 and medians[0] > 0 else "-"
    return f"| {name} | {cells[0]} | {cells[1]} | {ratio} |"


def service(work: Path, port: int, name: str) -> ProcessInstance:
    """The small HTTP service, serving `work` on 127.0.0.1:`port`."""
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(work)]
    health = HttpHealth(http=f"http://127.0.0.1:{port}/", timeout_s=0.5)
    return ProcessInstance(name=name, argv=argv, cwd=str(work), log=str(work / f"{name}.log"), health=health)


def process_kind(work: Path, port: int) -> tuple[Kind, LiveStack]:
    """Start the service as a plain process, healthy; the process.kill kind and the stack it lives in."""
    process = spawn(service(work, port, "svc-process"))
    assert process.health is not None
    wait_healthy(process.health, 15)
    stack = LiveStack(StackDescription(name="bench", targets={"svc": ProcessTarget(instances=[process])}), None)
    ctx = EngineContext("bench", stack, 1, EventBus())

    def process_pid() -> int:
        group = stack.target("svc")
        assert isinstance(group, ProcessTarget) and group.instances[0].pid is not None
        return group.instances[0].pid

    return Kind("process.kill", ProcessKillInjector(ProcessKillSpec()), ctx, "svc", process_pid, port), stack


def container_kind(url: str, target: ContainerTarget, port: int) -> Kind:
    """The container.kill kind of the service's started container."""
    member = target.containers[0]
    stack = LiveStack(StackDescription(name="bench", targets={"svc": target}), None)
    ctx = EngineContext("bench", stack, 1, EventBus())

    def container_pid() -> int:
        with engine(url, 10) as client:
            return client.inspect(str(member.container)).pid

    return Kind("container.kill", ContainerKillInjector(ContainerKillSpec()), ctx, "svc", container_pid, port)


def run_rounds(kinds: list[Kind], rounds: int) -> None:
    """Kill each kind `rounds` times, alternating which goes first; print every onset."""
    for n in range(rounds):
        for kind in kinds if n % 2 == 0 else reversed(kinds):
            onset = measure(kind)
            kind.rounds.append(onset)
            print(
                f"round {n + 1} {kind.label:<15} call {onset.call_s * 1000:7.1f} ms  "
                f"pid gone {(onset.pid_gone_s or float('nan')) * 1000:7.1f} ms  "
                f"refused {(onset.refused_s or float('nan')) * 1000:7.1f} ms  "
                f"rollback {onset.rollback_s * 1000:7.1f} ms",
                flush=True,
            )
            time.sleep(0.2)


def kill_process(stack: LiveStack) -> None:
    """SIGKILL and reap the service's current process (the rollbacks restarted it)."""
    last = stack.target("svc")
    if isinstance(last, ProcessTarget) and last.instances[0].pid is not None:
        os.kill(last.instances[0].pid, signal.SIGKILL)
        reap(last.instances[0].pid)


def print_table(kinds: list[Kind], rounds: int, url: str) -> None:
    proc, cont = kinds
    print(f"\n{rounds} rounds each; median (min-max); engine {url}")
    print("| from the kill call until | process.kill | container.kill | container / process |")
    print("|---|---|---|---|")
    print(row("the injector's inject returned", [[o.call_s for o in k.rounds] for k in kinds]))
    print(row("the host process is gone", [[o.pid_gone_s for o in k.rounds] for k in kinds]))
    print(row("the service port refuses", [[o.refused_s for o in k.rounds] for k in kinds]))
    print(row("rollback: back and healthy", [[o.rollback_s for o in k.rounds] for k in (proc, cont)]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="kills of each kind (at least 5)")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5 (medians of fewer say little)")
    url = engine_url(None)
    try:
        with engine(url, 10) as client:
            client.ping()
    except ContainerEngineError as exc:
        print(f"no container engine: {exc}\nstart one with: export $(bash scripts/podman-setup.sh)", file=sys.stderr)
        return 1

    work = Path(tempfile.mkdtemp(prefix="chaos-onset-", dir=REPO / "runs" if (REPO / "runs").is_dir() else None))
    proc_port, cont_port = free_ports(2)
    proc_kind, proc_stack = process_kind(work, proc_port)
    cont_target = containers.start(work, [service(work, cont_port, "svc-container")], "bench", "onset bench")
    member = cont_target.containers[0]
    try:
        containers.wait_ready(cont_target, [], time.monotonic() + 30)
        kinds = [proc_kind, container_kind(url, cont_target, cont_port)]
        run_rounds(kinds, args.rounds)
    finally:
        containers.remove_ids(url, [str(member.container)])
        kill_process(proc_stack)
        shutil.rmtree(work, ignore_errors=True)
    print_table(kinds, args.rounds, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
