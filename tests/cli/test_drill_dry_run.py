"""`chaos.py drill run --dry-run` against real processes: validated, calendar judged, every experiment dry-run,
nothing started or injected; exit codes as `run --dry-run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.health import wait_healthy
from clients.procs import is_running, spawn
from engine.errors import ExitCode
from stackspec.targets import HttpHealth, ProcessInstance, ProcessTarget, StackDescription
from tests.support.helpers import chaos, free_port

HERE = Path(__file__).resolve().parent
ALWAYS_OPEN = {
    "timezone": "UTC",
    "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
    "sessions": ["00:00-23:59"],
}

pytestmark = [pytest.mark.slow]


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, T for stopped ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def web(tmp_path: Path) -> Iterator[ProcessInstance]:
    port = free_port()
    inst = spawn(
        ProcessInstance(
            name="web-1",
            argv=[sys.executable, str(HERE / "svc.py"), str(port), "web"],
            log=str(tmp_path / "web-1.log"),
            health=HttpHealth(http=f"http://127.0.0.1:{port}/health"),
            ports={"http": port},
        )
    )
    assert inst.health is not None and inst.pid is not None
    wait_healthy(inst.health, 10)
    yield inst
    if is_running(inst):
        os.kill(inst.pid, signal.SIGCONT)
        os.kill(inst.pid, signal.SIGKILL)


def _stack(folder: Path, name: str, web: ProcessInstance, **fields: object) -> None:
    desc = StackDescription.model_validate(
        {
            "name": name,
            "endpoints": {"web": f"http://127.0.0.1:{web.ports['http']}"},
            "targets": {"web": ProcessTarget(instances=[web]).model_dump()},
            **fields,
        }
    )
    (folder / f"{name}.json").write_text(desc.model_dump_json(indent=1))


def _experiment(folder: Path, name: str, stack: str) -> None:
    (folder / f"{name}.yaml").write_text(f"""\
version: 1
title: Freeze the web server ({name})
stack: {{file: {stack}.json}}
load: {{locustfile: {HERE / "web_locustfile.py"}, users: 2, spawn_rate: 2, duration: 10s, warmup: 2s, host: web}}
steady_state:
  - {{name: errors, metric: error_rate, max: 0.01}}
method:
  - {{at: 4s, duration: 2s, kind: process.pause, target: web}}
integrity: []
""")


def _drill(folder: Path, experiments: list[str], calendar: str = "") -> Path:
    path = folder / "drill.yaml"
    path.write_text(f"""\
version: 1
name: dry-drill
title: Web freeze drill (dry run test)
owner: tests
experiments: [{", ".join(f"{e}.yaml" for e in experiments)}]
runbook:
  - {{id: inject, title: Web server frozen, when: fault_injected}}
  - {{id: detect, title: Latency alert fires, when: steady_state_failed, marks: detect, expected: 30s}}
  - {{id: debrief, title: Debrief}}
{calendar}""")
    return path


def _dry(drill: Path, runs: Path) -> tuple[int, str]:
    result = chaos("drill", "run", "--dry-run", str(drill), "--runs-dir", str(runs), timeout=90)
    return result.returncode, result.stdout + result.stderr


def test_a_drill_dry_run_on_a_live_stack_passes_and_injects_nothing(tmp_path: Path, web: ProcessInstance) -> None:
    assert web.pid is not None
    _stack(tmp_path, "lab", web, market_hours=None)  # a lab stack: the drill's calendar follows it
    _experiment(tmp_path, "freeze", "lab")
    code, said = _dry(_drill(tmp_path, ["freeze"]), tmp_path / "runs")
    assert code == ExitCode.PASSED, said
    assert "nothing will be started or injected" in said
    assert "calendar: no market hours apply" in said and "never trades (market_hours: null)" in said
    assert "experiment 1: freeze.yaml" in said and "process.pause on web" in said
    assert "would hit now: web-1" in said
    assert "step 2 detect: Latency alert fires (auto when steady_state_failed, expected 30s, marks detect)" in said
    assert "drill dry run: ok" in said
    assert is_running(web) and _state(web.pid) != "T"
    assert not list((tmp_path / "runs").glob("drills/*/drill.json")) and not list(
        (tmp_path / "runs").glob("*/journal.json")
    )


def test_a_drill_whose_target_is_missing_exits_4_and_injects_nothing(tmp_path: Path, web: ProcessInstance) -> None:
    assert web.pid is not None
    _stack(tmp_path, "lab", web, market_hours=None)
    dead = subprocess.Popen(["true"])  # a PID that was this process's a moment ago, now gone
    dead.wait(timeout=10)
    _stack(tmp_path, "broken", web.model_copy(update={"pid": dead.pid, "start_time": 1}), market_hours=None)
    _experiment(tmp_path, "freeze", "lab")
    _experiment(tmp_path, "missing", "broken")
    code, said = _dry(_drill(tmp_path, ["freeze", "missing"]), tmp_path / "runs")
    assert code == ExitCode.CANNOT_RUN, said
    assert "would hit now: web-1" in said  # the first experiment was still dry-run
    assert "web-1" in said and "not running" in said, said
    assert "the drill would not run as planned (exit 4)" in said
    assert is_running(web) and _state(web.pid) != "T"
    assert not list((tmp_path / "runs").glob("*/journal.json"))


def test_the_drill_obeys_its_stacks_market_hours_unless_its_file_says_otherwise(
    tmp_path: Path, web: ProcessInstance
) -> None:
    _stack(tmp_path, "trading", web, market_hours=ALWAYS_OPEN)
    _experiment(tmp_path, "freeze", "trading")
    code, said = _dry(_drill(tmp_path, ["freeze"]), tmp_path / "runs")
    assert code == ExitCode.CANNOT_RUN, said
    assert "calendar: refused" in said and "stack trading" in said and "the market is open" in said
    assert "would hit now" not in said  # refused before any experiment was dry-run
    override = "calendar: {override: true, reason: rehearsal agreed with the desk}\n"
    code, said = _dry(_drill(tmp_path, ["freeze"], override), tmp_path / "runs")
    assert code == ExitCode.PASSED, said
    assert "calendar: stack trading" in said and "run anyway by" in said and "rehearsal agreed" in said
    assert "guard market_hours: overridden" in said  # passed on to the experiment's own guard
