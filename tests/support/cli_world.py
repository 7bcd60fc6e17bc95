"""The CLI tests' small world: two services to fault and a web server to load, and the experiment they run.

`tests/cli/conftest.py` turns `new_world` into the `world` fixture; other packages' tests (SSH, the
fault matrix) use `write_experiment` with a world of their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clients.health import wait_healthy
from clients.procs import is_running, spawn
from engine.journal import load_journal
from stackspec.targets import HttpHealth, ProcessInstance, ProcessTarget, StackDescription
from tests.support.helpers import ROOT, free_port

HERE = ROOT / "tests" / "cli"  # svc.py and web_locustfile.py live beside the CLI tests


def service(tmp: Path, name: str, role: str, restart_argv: list[str] | None = None) -> ProcessInstance:
    port = free_port()
    argv = [sys.executable, str(HERE / "svc.py"), str(port), role]
    inst = spawn(
        ProcessInstance(
            name=name,
            argv=argv,
            log=str(tmp / f"{name}.log"),
            health=HttpHealth(http=f"http://127.0.0.1:{port}/health"),
            role_url=f"http://127.0.0.1:{port}/status",
            ports={"http": port},
        )
    )
    assert inst.health is not None
    wait_healthy(inst.health, 10)
    return inst.model_copy(update={"argv": restart_argv}) if restart_argv else inst


def new_world(tmp_path: Path) -> dict[str, object]:
    """A web server (the load's target, never faulted) and a group of two services to fault."""
    web = service(tmp_path, "web-1", "web")
    svc = [service(tmp_path, "svc-1", "leader"), service(tmp_path, "svc-2", "follower")]
    return {"web": web, "svc": svc, "tmp": tmp_path}


def end_world(state: dict[str, object]) -> None:
    """Kill the world's services, and those a run's rollback restarted (known only to that run's journal)."""
    web, svc, tmp_path = state["web"], state["svc"], state["tmp"]
    assert isinstance(web, ProcessInstance) and isinstance(svc, list) and isinstance(tmp_path, Path)
    for inst in [web, *svc]:
        if inst.pid and is_running(inst):
            os.kill(inst.pid, signal.SIGKILL)
    for journal in tmp_path.glob("runs/*/journal.json"):
        for fault in load_journal(journal).faults:
            for result in fault.rollback:
                pid = result.detail.get("pid")
                cmdline = Path(f"/proc/{pid}/cmdline")
                if pid and cmdline.exists() and b"svc.py" in cmdline.read_bytes():
                    os.kill(pid, signal.SIGKILL)


def write_experiment(
    world: dict[str, object],
    *,
    steady: str,
    stack: StackDescription | None = None,
    at: str = "4s",
    host: str = "web",
    select: str = "{role: leader}",
    extra: str = "",
    load: str = "11s",
) -> Path:
    """The test experiment: `load` long (11 s: baseline, a 2 s fault at `at`, and a recovery window that still
    holds probe samples when a restart is slow on a loaded machine)."""
    tmp = world["tmp"]
    assert isinstance(tmp, Path)
    web = world["web"]
    svc = world["svc"]
    assert isinstance(web, ProcessInstance) and isinstance(svc, list)
    desc = stack or StackDescription(
        name="cli-test",
        endpoints={"web": f"http://127.0.0.1:{web.ports['http']}"},
        targets={"svc": ProcessTarget(instances=svc), "web": ProcessTarget(instances=[web])},
        market_hours=None,  # a test stack never trades: runs are allowed at any time of day
    )
    (tmp / "stack.json").write_text(desc.model_dump_json(indent=1))
    path = tmp / "exp.yaml"
    path.write_text(f"""\
version: 1
title: CLI exit code test
stack: {{file: stack.json}}
load: {{locustfile: {HERE / "web_locustfile.py"}, users: 4, spawn_rate: 4, duration: {load}, warmup: 2s, host: {host}}}
steady_state:
{steady}
method:
  - {{at: {at}, duration: 2s, kind: process.kill, target: svc, select: {select}}}
objectives: {{rto: 5s}}
{extra}
integrity: []            # this service takes no orders: nothing to reconcile
recovery: {{stable_for: 1s}}
""")
    return path


def only_journal(runs: Path) -> Path:
    (journal,) = runs.glob("*/journal.json")
    return journal


OK_STEADY = "  - {name: errors, metric: error_rate, max: 0.01}\n  - {name: web health, http: {url: '{web}/health'}}"


def start_run(experiment: Path, runs: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "chaos.py"), "run", str(experiment), "--runs-dir", str(runs), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_fault(runs: Path, status: str = "injected", timeout_s: float = 60) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in runs.glob("*/journal.json"):
            try:
                faults = load_journal(path).faults  # the journal as a reader sees it, events included
            except (ValueError, OSError):
                continue
            if faults and faults[0].status == status:
                return path
        time.sleep(0.05)
    raise AssertionError(f"no fault reached {status!r} in time")
