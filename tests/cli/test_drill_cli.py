"""`chaos.py drill ...` end to end: real experiment runs (real processes, real Locust), real HTTP acknowledgements,
a real webhook receiver, the real scheduler; records, history and reports checked on disk."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.health import wait_healthy
from clients.procs import is_running, spawn
from drilling.record import load_drill_record
from engine.errors import ExitCode
from stackspec.targets import HttpHealth, ProcessInstance, ProcessTarget, StackDescription
from tests.drilling.receiver import receiving
from tests.support.helpers import ROOT, chaos, free_port

HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.slow]


def service(tmp: Path, name: str, role: str) -> ProcessInstance:
    port = free_port()
    inst = spawn(
        ProcessInstance(
            name=name,
            argv=[sys.executable, str(HERE / "svc.py"), str(port), role],
            log=str(tmp / f"{name}.log"),
            health=HttpHealth(http=f"http://127.0.0.1:{port}/health"),
            role_url=f"http://127.0.0.1:{port}/status",
            ports={"http": port},
        )
    )
    assert inst.health is not None
    wait_healthy(inst.health, 10)
    return inst


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Path]:
    """A web server under load that the experiment freezes (SIGSTOP) for 2 s; returns the folder.

    A pause keeps the process (and its PID) so that the same stack can be drilled again and again.
    """
    web = service(tmp_path, "web-1", "web")
    desc = StackDescription(
        name="drill-test",
        market_hours=None,  # the tests run at any hour
        endpoints={"web": f"http://127.0.0.1:{web.ports['http']}"},
        targets={"web": ProcessTarget(instances=[web])},
    )
    (tmp_path / "stack.json").write_text(desc.model_dump_json(indent=1))
    (tmp_path / "exp.yaml").write_text(f"""\
version: 1
title: Drill test experiment
stack: {{file: stack.json}}
load: {{locustfile: {HERE / "web_locustfile.py"}, users: 4, spawn_rate: 4, duration: 10s, warmup: 2s, host: web}}
steady_state:
  - {{name: errors, metric: error_rate, max: 0.01}}
  - {{name: p99, metric: latency_p99_ms, max: 300}}       # only observed while the web server is frozen
method:
  - {{at: 4s, duration: 2s, kind: process.pause, target: web}}
objectives: {{rto: 5s}}
integrity: []
recovery: {{stable_for: 1s}}
""")
    yield tmp_path
    if web.pid and is_running(web):
        os.kill(web.pid, signal.SIGCONT)
        os.kill(web.pid, signal.SIGKILL)


def write_drill(folder: Path, extra: str = "", name: str = "drill-test") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"""\
version: 1
name: {name}
title: Service loss drill (test)
owner: tests
participants: [{{name: Alice, role: incident commander}}]
objectives: {{rto: 5s, time_to_detect: 4s, time_to_recover: 15s}}
experiments: [exp.yaml]
runbook:
  - {{id: brief, title: Brief the team, expected: 1m}}
  - {{id: inject, title: Web server frozen, when: fault_injected}}
  - {{id: detect, title: Latency alert fires, when: steady_state_failed, marks: detect}}
  - {{id: rolled, title: Web server resumed, when: fault_rolled_back}}
  - {{id: recover, title: Steady state holds, when: recovered, marks: recover}}
  - {{id: debrief, title: Debrief}}
calendar: {{market_hours: none}}
{extra}""")
    return path


def only(pattern: str, folder: Path) -> Path:
    (found,) = folder.glob(pattern)
    return found


def test_a_drill_run_twice_leaves_records_reports_history_and_webhooks(world: Path) -> None:
    runs = world / "runs"
    with receiving() as receiver:
        drill = write_drill(world, f"notify: [{{webhook: '{receiver.url('/hook?token=SECRET')}'}}]\n")
        first = chaos("drill", "run", "--non-interactive", str(drill), "--runs-dir", str(runs))
        assert first.returncode == ExitCode.PASSED, first.stdout + first.stderr
        second = chaos("drill", "run", "--non-interactive", str(drill), "--runs-dir", str(runs))
        assert second.returncode == ExitCode.PASSED, second.stdout + second.stderr
    for result in (first, second):
        assert "SECRET" not in result.stdout + result.stderr
        assert "drill verdict: PASSED" in result.stdout and "[auto-acknowledged]" in result.stdout
    records = sorted(runs.glob("drills/*/drill.json"))
    assert len(records) == 2
    record = load_drill_record(records[0])
    assert "SECRET" not in records[0].read_text()
    steps = {s.id: s for s in record.steps}
    assert [s.status for s in record.steps] == ["done"] * 6, [(s.id, s.status, s.detail) for s in record.steps]
    assert steps["brief"].auto_acknowledged and steps["debrief"].auto_acknowledged
    assert not steps["inject"].auto_acknowledged and steps["inject"].done_at is not None
    (exp,) = record.experiments
    assert exp.verdict == "passed" and exp.journal and Path(exp.journal).is_file()
    assert exp.report and Path(exp.report).is_file() and exp.requests > 0
    assert exp.fault_started_at == steps["inject"].done_at
    assert record.rto_s is not None and record.rto_s <= 5 and record.time_to_recover_s is not None
    assert record.time_to_detect_s is not None and 0 < record.time_to_detect_s <= 4
    assert steps["detect"].done_at is not None and steps["detect"].done_at > steps["inject"].done_at
    assert [(o.name, o.met) for o in record.objectives] == [
        ("rto", True),
        ("time_to_detect", True),
        ("time_to_recover", True),
    ]
    assert record.report and Path(record.report).name == "drill-report.html" and Path(record.report).is_file()
    events = [(r["json"]["event"], r["json"]["run_id"]) for r in receiver.requests]
    assert sorted(events) == sorted(
        [(e, load_drill_record(p).drill_run_id) for p in records for e in ("drill_started", "drill_finished")]
    )
    finished = [r["json"] for r in receiver.requests if r["json"]["event"] == "drill_finished"]
    assert all(f["verdict"] == "passed" and f["report"].endswith("drill-report.html") for f in finished)
    assert [n["ok"] for n in record.notifications] == [True, True]

    history = chaos("drill", "history", "drill-test", "--runs-dir", str(runs))
    assert history.returncode == 0
    rows = history.stdout.splitlines()[1:]
    assert len(rows) == 2 and all("PASSED" in row and "3/3 met" in row for row in rows)
    as_json = json.loads(chaos("drill", "history", "--json", "--runs-dir", str(runs)).stdout)
    assert [r["drill_run_id"] for r in as_json] == [load_drill_record(p).drill_run_id for p in records]
    assert as_json[0]["record_sha256"] == hashlib.sha256(records[0].read_bytes()).hexdigest()


class Output:
    """Drains a child's stderr in a thread (so it never blocks) and lets a test wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never printed:\n{''.join(self.lines)}")


def test_manual_steps_are_acknowledged_from_the_cli_and_the_web_page(world: Path) -> None:
    runs = world / "runs"
    drill = write_drill(world)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "chaos.py"),
            "drill",
            "run",
            str(drill),
            "--runs-dir",
            str(runs),
            "--ack-timeout",
            "10m",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        output = Output(proc)
        page = output.wait_for("runbook page: http://127.0.0.1:").split("runbook page: ", 1)[1].strip()
        token = urllib.parse.parse_qs(urllib.parse.urlsplit(page).query)["token"][0]
        assert "chaos.py drill ack brief" in output.wait_for("step 1 'brief' due")
        with urllib.request.urlopen(page, timeout=5) as response:
            assert "Service loss drill (test)" in response.read().decode()

        wrong = chaos("drill", "ack", "inject", "--runs-dir", str(runs))
        assert wrong.returncode == ExitCode.INVALID_INPUT and "automatic" in wrong.stderr
        acked = chaos("drill", "ack", "brief", "--by", "alice", "--runs-dir", str(runs))
        assert acked.returncode == ExitCode.PASSED, acked.stderr
        assert "step brief of drill drill-test: done" in acked.stdout and "by alice" in acked.stdout

        base = page.split("/?", 1)[0]
        body = urllib.parse.urlencode({"step": "debrief", "by": "bob", "token": token}).encode()
        assert "debrief" in output.wait_for("waiting up to 10m")
        assert "experiment 1: PASSED" in "".join(output.lines)
        with urllib.request.urlopen(base + "/ack", data=body, timeout=5) as response:
            assert json.loads(response.read())["message"] == "step 'debrief' acknowledged by bob"
        assert proc.wait(timeout=60) == ExitCode.PASSED, "".join(output.lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    record = load_drill_record(only("drills/*/drill.json", runs))
    steps = {s.id: s for s in record.steps}
    assert (steps["brief"].by, steps["brief"].detail, steps["brief"].auto_acknowledged) == ("alice", "via cli", False)
    assert (steps["debrief"].by, steps["debrief"].detail) == ("bob", "via web")
    assert steps["brief"].took_s is not None and steps["brief"].took_s > 0
    assert not (only("drills/*/drill.json", runs).parent / "live.json").exists()
    assert chaos("drill", "ack", "brief", "--runs-dir", str(runs)).returncode == ExitCode.CANNOT_RUN  # none running


def test_the_scheduler_runs_a_drill_at_its_time_and_stops(world: Path) -> None:
    runs = world / "runs"
    drill = write_drill(world, 'schedule: {cron: "*/3 * * * * *", timezone: Asia/Shanghai}\n')
    started = time.monotonic()
    result = chaos("drill", "schedule", str(drill), "--runs-dir", str(runs), "--max-runs", "1", "--for", "90s")
    took = time.monotonic() - started
    assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
    assert "1 drill run(s), 0 not passed" in result.stdout and took < 80
    record = load_drill_record(only("drills/*/drill.json", runs))
    assert record.non_interactive and record.verdict == "passed"
    history = chaos("drill", "history", "--runs-dir", str(runs))
    assert len(history.stdout.splitlines()) == 2 and record.drill_run_id in history.stdout


def test_validate_reads_drills_and_reports_mistakes_with_file_line(tmp_path: Path) -> None:
    good = chaos("validate", *[str(p) for p in sorted((ROOT / "drills").glob("*.yaml"))])
    assert good.returncode == ExitCode.PASSED, good.stderr
    assert "ok — drill redis-primary-loss" in good.stdout and "step 3 detect" in good.stdout
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "drills" / "redis-primary-loss.yaml").read_text()
    line = text[: text.index("../experiments/")].count("\n") + 1
    bad.write_text(text.replace("../experiments/", "nowhere/"))
    result = chaos("validate", str(bad))
    assert result.returncode == ExitCode.INVALID_INPUT
    assert result.stderr.startswith(f"{bad}:{line}:5: experiment 'nowhere/redis-primary-loss.yaml' not found")


def test_export_prints_a_crontab_entry_and_a_cronjob() -> None:
    drill = str(ROOT / "drills" / "matcher-node-loss.yaml")
    crontab = chaos("drill", "export", "--crontab", drill)
    assert crontab.returncode == 0 and "\n0 10 * * 0 cd " in crontab.stdout and "--non-interactive" in crontab.stdout
    cronjob = chaos("drill", "export", "--k8s-cronjob", drill, "--image", "chaos:1")
    assert cronjob.returncode == 0 and "concurrencyPolicy: Forbid" in cronjob.stdout
    assert "timeZone: Asia/Shanghai" in cronjob.stdout and "- drills/matcher-node-loss.yaml" in cronjob.stdout
