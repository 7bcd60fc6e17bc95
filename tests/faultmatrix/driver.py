"""Fault-matrix driver: one real engine run (Runner, Rollbacks, UndoLedger, SignalGuard) in a process of its own.

`python -m tests.matrix_driver` imports the engine, prints `ready`, then reads one JSON cell from stdin
(kind, target, select, params, ending, runs_dir, run_dir, fault_s, and either stack_dir — the live `ha`
reference stack there — or stack_file — a stack description file) and runs a one-fault experiment against
that stack with a cheap fake load (the load is not under test).
It prints one JSON line per fact on stdout: `{"event": "injected", ...}` once the fault is in effect,
`{"event": "finished", ...}` at the end. A later `raise` line on stdin makes the load raise inside the
run (the exception ending); signals and SIGKILL come from the test. The exit code is the run's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from engine.events import Event, EventBus, FaultInjected, FaultRolledBack
from engine.journal import LoadRecord
from engine.loader import load_document, validate_model
from engine.locks import SystemLock, identities
from engine.model import Experiment
from engine.plan import Plan, PlannedFault
from engine.runner import Runner, RunSettings
from engine.stack import open_stack
from engine.undo import LEDGER_FILE
from injectors.registry import get_injector

INJECT_AT_S = 0.05  # no warmup to wait through: the fake load's baseline holds from the first second
TAIL_S = 0.2  # load left after a fault that ends by itself (the normal ending)
LONG_FAULT_S = 120.0  # a fault the test ends (exception, signal, SIGKILL) long before its duration
TICK_S = 0.05


class LoadFailedError(RuntimeError):
    """Raised by the fake load inside the run: the exception ending."""


class MatrixLoad:
    """A load driver that never sends a request: every second it reports 50 fast, successful ones.

    It reports the seconds around the start at once, so the baseline is judged without a warmup; once
    `explode` is set, its next poll (inside the runner's timeline) raises LoadFailedError.
    """

    def __init__(self, duration_s: float) -> None:
        self.record = LoadRecord(
            locustfile="matrix-load.py", users=1, spawn_rate=1, duration_s=duration_s, host="http://127.0.0.1:1"
        )
        self.explode = threading.Event()
        self._next: int | None = None
        self._stopped = False

    def check_target(self) -> str | None:
        return None

    def start(self) -> None:
        self.record.started_at = time.time()

    def wait_started(self, timeout_s: float) -> float:
        assert self.record.started_at is not None
        self._next = math.floor(self.record.started_at) - 1
        return self.record.started_at

    def poll(self) -> list[dict[str, Any]]:
        if self.explode.is_set():
            self.explode.clear()  # once: the unwinding polls again
            raise LoadFailedError("matrix: the load failed inside the run, after the injection")
        if self._next is None:
            return []
        out = []
        # Seconds up to two ahead, also after the stop: any window the runner judges (baseline, and recovery
        # after a rollback that outlasted the load) finds healthy traffic.
        while self._next <= math.floor(time.time()) + 2:
            hist = HdrHistogram(1, 60_000_000, 2)
            for _ in range(50):
                hist.record_value(2_000)
            out.append(
                {
                    "type": "second",
                    "t": self._next,
                    "src": "matrix:1",
                    "name": "GET /health",
                    "method": "GET",
                    "n": 50,
                    "fail": 0,
                    "hist": hist.encode().decode(),
                    "users": 1,
                }
            )
            self._next += 1
        return out

    def running(self) -> bool:
        return not self._stopped

    def wait_finished(self, timeout_s: float) -> bool:
        self.stop()
        return True

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.record.finished_at = time.time()
            self.record.exit_code = 0


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def stack_ref(cell: dict[str, Any]) -> dict[str, str]:
    """The experiment's `stack`: a stack description file, else the `ha` reference stack in stack_dir."""
    return {"file": str(cell["stack_file"])} if cell.get("stack_file") else {"reference": "ha"}


def experiment_file(run_dir: Path, cell: dict[str, Any], fault_s: float, load_s: float) -> Path:
    step: dict[str, Any] = {
        "at": f"{int(INJECT_AT_S * 1000)}ms",
        "duration": f"{int(fault_s * 1000)}ms",
        "kind": cell["kind"],
        "target": cell["target"],
        "params": cell.get("params") or {},
    }
    if cell.get("select") is not None:
        step["select"] = cell["select"]
    document = {
        "version": 1,
        "title": f"fault matrix: {cell['kind']} ending {cell['ending']}",
        "stack": stack_ref(cell),
        "load": {"locustfile": "matrix-load.py", "users": 1, "spawn_rate": 1, "duration": f"{int(load_s * 1000)}ms"}
        | {"warmup": "0s"},
        "steady_state": [{"name": "error rate", "metric": "error_rate", "max": 0.01}],
        "method": [step],
        "recovery": {"stable_for": "100ms"},
        "integrity": [],
    }
    path = run_dir / "experiment.yaml"
    path.write_text(json.dumps(document, indent=1) + "\n")  # JSON is YAML: the real loader reads it
    (run_dir / "matrix-load.py").write_text("# the fault matrix uses a fake load; no Locust file runs\n")
    return path


def build_plan(path: Path) -> Plan:
    """The experiment as the engine validates it, bound to its injector. engine.plan.check is skipped only
    for its timing rules (a fault no earlier than warmup + 2 s): this load needs no baseline time."""
    document = load_document(path)
    experiment = validate_model(Experiment, document)
    (step,) = experiment.method
    injector = get_injector(step.kind)
    fault = PlannedFault(1, step, injector, injector.parse_params(step.params))
    return Plan(experiment, document, [fault], (path.parent / experiment.load.locustfile).resolve())


def read_commands(load: MatrixLoad) -> None:
    for line in sys.stdin:
        if line.strip() == "raise":
            load.explode.set()


def main() -> int:
    say(event="ready")
    cell = json.loads(sys.stdin.readline())
    ending = cell["ending"]
    fault_s = float(cell["fault_s"]) if ending == "normal" else LONG_FAULT_S
    load_s = INJECT_AT_S + fault_s + TAIL_S
    run_dir = Path(cell["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(experiment_file(run_dir, cell, fault_s, load_s))
    stack = open_stack(plan.experiment.stack, run_dir, Path(cell.get("stack_dir") or run_dir))
    load = MatrixLoad(load_s)
    threading.Thread(target=read_commands, args=(load,), name="matrix-stdin", daemon=True).start()
    settings = RunSettings(
        run_id=run_dir.name,
        run_dir=run_dir,
        seed=int(cell.get("seed", 1)),
        tick_s=TICK_S,
        undo_ledger=Path(cell["runs_dir"]) / LEDGER_FILE,
    )
    bus = EventBus()
    # As `chaos.py run` does (engine.api): the system is locked for the run, so `recover` leaves it alone.
    lock = SystemLock(identities(stack.description), f"run {run_dir.name} (pid {os.getpid()}, fault matrix)")
    lock.acquire()
    settings = dataclasses.replace(settings, lock_keys=tuple(lock.keys))
    runner = Runner(plan, stack, load, settings, bus)

    def report(event: Event) -> None:
        # Subscribed after the runner's journal listener: the journal on disk already shows the event.
        if isinstance(event, FaultInjected):
            say(event="injected", ok=event.ok, targets=event.targets, error=event.error, t=event.t)
        elif isinstance(event, FaultRolledBack):
            say(event="rolled_back", ok=event.ok, verified=event.verified, error=event.error, t=event.t)

    bus.subscribe(report)
    journal = runner.execute()
    lock.release()
    say(
        event="finished",
        verdict=journal.verdict,
        exit_code=journal.exit_code,
        signals=runner.guard.received,
        record_error=runner.writer.failure,
    )
    return journal.exit_code if journal.exit_code is not None else 1


if __name__ == "__main__":
    sys.exit(main())
