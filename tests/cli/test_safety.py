"""Safety, from the outside: undo-ledger recovery after a killed runner, one drill per stack, the red button."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients.procs import is_running
from engine.errors import ExitCode
from engine.journal import load_journal
from engine.locks import SystemLock, identities
from engine.undo import LEDGER_FILE, UndoLedger
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tests.support.cli_world import OK_STEADY, write_experiment
from tests.support.helpers import ROOT, chaos


def wait_injected(journal_dir: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for path in journal_dir.glob("*/journal.json"):
            try:
                faults = json.loads(path.read_text())["faults"]
            except (ValueError, OSError):
                continue
            if faults and faults[0]["status"] == "injected":
                return
        time.sleep(0.05)
    raise AssertionError("the fault was not injected in time")


def loads_of(runs: Path) -> list[int]:
    """Live Locust processes whose metrics go to a run under `runs` (read from their environment)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"CHAOS_METRICS_FILE={runs}".encode() in environ and state not in ("Z", "X"):
            found.append(int(entry))
    return found


def test_a_killed_runner_leaves_its_fault_pending_and_recover_undoes_it(
    world: dict[str, object], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY)
    runner = subprocess.Popen(
        [sys.executable, str(ROOT / "chaos.py"), "run", str(experiment), "--runs-dir", str(runs), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_injected(runs)
    finally:
        os.kill(runner.pid, signal.SIGKILL)  # no rollback of its own: the ledger is all that is left
        runner.wait(timeout=10)
    svc = world["svc"]
    assert isinstance(svc, list)
    leader: ProcessInstance = svc[0]
    assert not is_running(leader), "the killed runner's fault (the leader killed) is still in place"
    # Its load does not outlive it: the kernel tells Locust its parent died.
    deadline = time.monotonic() + 3  # well before its own --run-time would end it
    while (left := loads_of(runs)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"Locust outlived the SIGKILLed runner: pids {left}"
    (pending,) = UndoLedger(runs / LEDGER_FILE).pending()
    assert (pending.kind, pending.index, [t.id for t in pending.plan.targets]) == ("process.kill", 1, ["svc-1"])

    refused = chaos("run", str(experiment), "--runs-dir", str(runs))
    assert refused.returncode == ExitCode.CANNOT_RUN
    assert "chaos.py recover" in refused.stderr and "nothing was started" in refused.stderr
    assert len(list(runs.glob("*/journal.json"))) == 1  # the refused run did not even create a run

    recovered = chaos("recover", "--runs-dir", str(runs))
    assert recovered.returncode == ExitCode.PASSED, recovered.stdout + recovered.stderr
    assert "fault #1 process.kill on svc: undone and verified gone" in recovered.stdout
    restarted = int(re.search(r"rollback svc-1: ok .*'pid': (\d+)", recovered.stdout).group(1))  # type: ignore[union-attr]
    try:
        assert b"svc.py" in Path(f"/proc/{restarted}/cmdline").read_bytes()
        assert UndoLedger(runs / LEDGER_FILE).pending() == []
        again = chaos("recover", "--runs-dir", str(runs))
        assert again.returncode == ExitCode.PASSED and "nothing to recover" in again.stdout
    finally:
        os.kill(restarted, signal.SIGKILL)


def test_one_drill_per_system_at_a_time(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY)
    system = StackDescription.model_validate_json((tmp_path / "stack.json").read_text())
    with SystemLock(identities(system), "run 20261125T000000Z-other (pid 1)"):  # as a run in progress holds it
        refused = chaos("run", str(experiment), "--runs-dir", str(runs))
    assert refused.returncode == ExitCode.CANNOT_RUN
    assert "run 20261125T000000Z-other (pid 1) is drilling this system now" in refused.stderr
    svc = world["svc"]
    assert isinstance(svc, list) and all(is_running(i) for i in svc)  # nothing was injected


def test_the_big_red_button_rolls_back_and_ends_the_run_as_aborted(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY)
    runner = subprocess.Popen(
        [sys.executable, str(ROOT / "chaos.py"), "run", str(experiment), "--runs-dir", str(runs), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_injected(runs)
        pressed = chaos("abort", "--runs-dir", str(runs))
        assert pressed.returncode == ExitCode.PASSED and "abort requested" in pressed.stdout
        output, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait(timeout=10)
    assert runner.returncode == ExitCode.DEVIATED, output
    journal = load_journal(next(runs.glob("*/journal.json")))
    assert journal.verdict == "aborted" and "chaos.py abort" in journal.summary
    (fault,) = journal.faults
    assert fault.status == "rolled_back" and fault.rollback[0].detail["restarted"] is True
    assert UndoLedger(runs / LEDGER_FILE).pending() == []


def _stack(world: dict[str, object], **fields: object) -> StackDescription:
    web, svc = world["web"], world["svc"]
    assert isinstance(web, ProcessInstance) and isinstance(svc, list)
    return StackDescription.model_validate(
        {
            "name": "guarded",
            "endpoints": {"web": f"http://127.0.0.1:{web.ports['http']}"},
            "targets": {"svc": {"instances": svc}, "web": {"instances": [web]}},
            **fields,
        }
    )


# A calendar in which the market never closes: every run is "inside trading hours".
ALWAYS_OPEN = {"weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "sessions": ["00:00-23:59"]}


def test_a_production_stack_is_refused_without_consent_and_drilled_with_it(
    world: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    svc = world["svc"]
    assert isinstance(svc, list)
    pids = [i.pid for i in svc]
    experiment = write_experiment(world, steady=OK_STEADY, stack=_stack(world, production=True, market_hours=None))

    refused = chaos("run", str(experiment), "--runs-dir", str(runs))
    assert refused.returncode == ExitCode.CANNOT_RUN, refused.stdout + refused.stderr
    assert "marked production" in refused.stderr and "nothing was started" in refused.stderr
    assert not list(runs.glob("*/journal.json")) and [i.pid for i in svc] == pids

    no_reason = chaos("run", str(experiment), "--runs-dir", str(runs), "--i-understand-production")
    assert no_reason.returncode == ExitCode.INVALID_INPUT and "need --reason" in no_reason.stderr

    monkeypatch.setenv("CHAOS_OPERATOR", "drill-lead")
    allowed = chaos(
        "run", str(experiment), "--runs-dir", str(runs), "--i-understand-production", "--reason", "DR drill CHG-42"
    )
    assert allowed.returncode == ExitCode.PASSED, allowed.stdout + allowed.stderr
    journal = load_journal(next(runs.glob("*/journal.json")))
    (prod,) = [g for g in journal.guards if g.name == "production"]
    assert prod.overridden and prod.reason == "DR drill CHG-42" and (prod.by or "").startswith("drill-lead@")
    assert "DR drill CHG-42" in (next(runs.glob("*/report.html"))).read_text()


def test_market_hours_refuse_a_run_and_the_dry_run_says_so(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY, stack=_stack(world, market_hours=ALWAYS_OPEN))
    refused = chaos("run", str(experiment), "--runs-dir", str(runs))
    assert refused.returncode == ExitCode.CANNOT_RUN
    assert "the market is open: 00:00-23:59 Asia/Shanghai" in refused.stderr
    dry = chaos("run", "--dry-run", str(experiment), "--runs-dir", str(runs))
    assert dry.returncode == ExitCode.CANNOT_RUN and "the market is open" in dry.stdout
    overridden = chaos(
        "run", "--dry-run", str(experiment), "--runs-dir", str(runs), "--ignore-market-hours", "--reason", "lab"
    )
    assert overridden.returncode == ExitCode.PASSED, overridden.stdout + overridden.stderr
    assert "guard market_hours: overridden by" in overridden.stdout and "(lab)" in overridden.stdout
    assert not runs.exists() or not list(runs.glob("*/journal.json"))


def test_dry_run_resolves_targets_and_runs_preflight_but_injects_nothing(
    world: dict[str, object], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    svc = world["svc"]
    assert isinstance(svc, list)
    pids = [i.pid for i in svc]
    dry = chaos("run", "--dry-run", str(write_experiment(world, steady=OK_STEADY)), "--runs-dir", str(runs))
    assert dry.returncode == ExitCode.PASSED, dry.stdout + dry.stderr
    assert "#1 process.kill would hit now: svc-1" in dry.stdout  # svc-1 is the one reporting role leader
    assert "preflight: ok" in dry.stdout and "nothing was started or injected" in dry.stdout
    assert [i.pid for i in svc] == pids and all(is_running(i) for i in svc)
    assert not runs.exists() or not list(runs.glob("*/journal.json"))


def test_a_fault_resolving_to_more_targets_than_allowed_is_refused_before_anything_starts(
    world: dict[str, object], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    svc = world["svc"]
    assert isinstance(svc, list)
    pids = [i.pid for i in svc]
    experiment = write_experiment(
        world, steady=OK_STEADY, select="{all: true}", extra="guards: {max_targets_per_fault: 1}\n"
    )
    result = chaos("run", str(experiment), "--runs-dir", str(runs))
    assert result.returncode == ExitCode.CANNOT_RUN, result.stdout + result.stderr
    assert "resolves to 2 targets, over guards.max_targets_per_fault (1)" in result.stderr
    assert [i.pid for i in svc] == pids and all(is_running(i) for i in svc)


def test_secrets_never_reach_the_journal_reports_or_console(
    world: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inline secrets are masked; a `${VAR}` reference is recorded as written and expanded only at exec time."""
    runs = tmp_path / "runs"
    svc = world["svc"]
    assert isinstance(svc, list)
    secret_env = {"DB_PASSWORD": "inline-s3cret", "API_TOKEN": "${CHAOS_TEST_API_TOKEN}"}
    world["svc"] = [inst.model_copy(update={"env": secret_env}) for inst in svc]
    stack = _stack(world, market_hours=None)
    stack = stack.model_copy(update={"endpoints": {**stack.endpoints, "cache": "redis://:url-s3cret@127.0.0.1:1/0"}})
    monkeypatch.setenv("CHAOS_TEST_API_TOKEN", "env-s3cret")
    result = chaos("run", str(write_experiment(world, steady=OK_STEADY, stack=stack)), "--runs-dir", str(runs))
    assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr

    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    written = {p.name: p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file()}
    assert {"journal.json", "report.html", "junit.xml"} <= set(written)
    for secret in ("inline-s3cret", "url-s3cret", "env-s3cret"):
        for name, text in {**written, "stdout": result.stdout, "stderr": result.stderr}.items():
            assert secret not in text, f"{secret} leaked into {name}"
    journal = load_journal(run_dir / "journal.json")
    # The undo ledger must be able to restart the service from a new process: it keeps the stack as written
    # (the reference, not the value), readable by the owner only.
    ledger = runs / LEDGER_FILE
    assert "${CHAOS_TEST_API_TOKEN}" in ledger.read_text() and "env-s3cret" not in ledger.read_text()
    assert ledger.stat().st_mode & 0o077 == 0
    # ... and the restarted service really got the value.
    pid = journal.faults[0].rollback[0].detail["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"API_TOKEN=env-s3cret" in environ and b"DB_PASSWORD=inline-s3cret" in environ


def test_a_user_stack_file_is_never_rewritten_but_the_next_run_finds_the_restarted_process(
    world: dict[str, object], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY)
    stack_file = tmp_path / "stack.json"
    written = stack_file.read_bytes()
    first = chaos("run", str(experiment), "--runs-dir", str(runs), "--seed", "1")
    assert first.returncode == ExitCode.PASSED, first.stdout + first.stderr
    assert stack_file.read_bytes() == written
    overlay = json.loads((tmp_path / "stack.json.live.json").read_text())
    (journal_path,) = runs.glob("*/journal.json")
    restarted = load_journal(journal_path).faults[0].rollback[0].detail["pid"]
    assert overlay["instances"]["svc"]["svc-1"]["pid"] == restarted
    # The second run kills the leader again: the restarted process, found through the overlay.
    second = chaos("run", str(experiment), "--runs-dir", str(runs), "--seed", "1")
    assert second.returncode == ExitCode.PASSED, second.stdout + second.stderr
    latest = max(runs.glob("*/journal.json"), key=lambda p: p.stat().st_mtime)
    assert load_journal(latest).faults[0].inject[0].detail["pid"] == restarted
    # An edit elsewhere in the file keeps the live PID; once the user edits the instance, what they wrote wins.
    from engine.model import StackRef
    from engine.stack import open_stack

    now_live = json.loads((tmp_path / "stack.json.live.json").read_text())["instances"]["svc"]["svc-1"]["pid"]
    document = json.loads(written)
    document["targets"]["svc"]["description"] = "edited by hand"
    stack_file.write_text(json.dumps(document))
    svc_target = open_stack(StackRef(file="stack.json"), tmp_path, tmp_path).description.targets["svc"]
    assert isinstance(svc_target, ProcessTarget)
    assert svc_target.instances[0].pid == now_live  # the second run's restart
    document["targets"]["svc"]["instances"][0]["log"] = str(tmp_path / "edited-by-hand.log")
    stack_file.write_text(json.dumps(document))
    svc_target = open_stack(StackRef(file="stack.json"), tmp_path, tmp_path).description.targets["svc"]
    assert isinstance(svc_target, ProcessTarget)
    assert svc_target.instances[0].pid == document["targets"]["svc"]["instances"][0]["pid"] != now_live
