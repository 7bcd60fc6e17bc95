"""No secret at rest or on a command line: the undo ledger, the live-state file and Locust's argv.

The ledger keeps where the stack description lives, never its inline secrets; `recover` reads the
values from the stack file again. The live-state file keeps PIDs only. The load target's URL (which
may carry user:password) reaches Locust through its environment, not its command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients.procs import state_of
from engine.errors import ExitCode
from engine.undo import LEDGER_FILE, UndoLedger
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tests.support.cli_world import OK_STEADY, start_run, wait_fault, write_experiment
from tests.support.helpers import ROOT, chaos

pytestmark = [pytest.mark.slow]
SECRET = "inline-s3cret-value"


def stack_with_secrets(world: dict[str, object], host_url: str | None = None) -> StackDescription:
    web, svc = world["web"], world["svc"]
    assert isinstance(web, ProcessInstance) and isinstance(svc, list)
    with_env = [i.model_copy(update={"env": {"DB_PASSWORD": SECRET}}) for i in svc]
    return StackDescription(
        name="secretive",
        endpoints={"web": host_url or f"http://127.0.0.1:{web.ports['http']}"},
        targets={"svc": ProcessTarget(instances=with_env), "web": ProcessTarget(instances=[web])},
        market_hours=None,
    )


def test_the_ledger_and_live_state_keep_no_inline_secret_and_recover_still_restarts_with_it(
    world: dict[str, object], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY, stack=stack_with_secrets(world))
    text = experiment.read_text().replace("duration: 2s, kind: process.kill", "duration: 8s, kind: process.kill")
    experiment.write_text(text.replace("duration: 11s", "duration: 15s"))
    runner = start_run(experiment, runs)
    try:
        wait_fault(runs)
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
    ledger = (runs / LEDGER_FILE).read_text()
    assert SECRET not in ledger and "***" in ledger
    assert (runs / LEDGER_FILE).stat().st_mode & 0o077 == 0
    live = tmp_path / "stack.json.live.json"
    assert SECRET not in live.read_text() and live.stat().st_mode & 0o077 == 0
    assert set(json.loads(live.read_text())["instances"]["svc"]["svc-1"]) == {"pid", "start_time"}

    recovered = chaos("recover", "--runs-dir", str(runs))
    assert recovered.returncode == ExitCode.PASSED, recovered.stdout + recovered.stderr
    pid = json.loads(live.read_text())["instances"]["svc"]["svc-1"]["pid"]
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"DB_PASSWORD={SECRET}".encode() in environ  # the value came from the stack file, not the ledger
        assert UndoLedger(runs / LEDGER_FILE).pending() == []
    finally:
        if state_of(pid) not in (None, "Z"):
            os.kill(pid, signal.SIGKILL)


def test_recover_refuses_to_restart_with_a_masked_value_when_the_stack_file_is_gone(
    world: dict[str, object], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    experiment = write_experiment(world, steady=OK_STEADY, stack=stack_with_secrets(world))
    text = experiment.read_text().replace("duration: 2s, kind: process.kill", "duration: 8s, kind: process.kill")
    experiment.write_text(text.replace("duration: 11s", "duration: 15s"))
    runner = start_run(experiment, runs)
    try:
        wait_fault(runs)
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)
    stack_file = tmp_path / "stack.json"
    kept = stack_file.read_bytes()
    stack_file.unlink()
    refused = chaos("recover", "--runs-dir", str(runs))
    assert refused.returncode == ExitCode.ROLLBACK_FAILED, refused.stdout + refused.stderr
    assert "keeps no secrets: restore the file" in refused.stdout
    assert len(UndoLedger(runs / LEDGER_FILE).pending()) == 1  # still listed, nothing started with '***'
    stack_file.write_bytes(kept)
    again = chaos("recover", "--runs-dir", str(runs))
    assert again.returncode == ExitCode.PASSED, again.stdout + again.stderr
    pid = json.loads((tmp_path / "stack.json.live.json").read_text())["instances"]["svc"]["svc-1"]["pid"]
    if state_of(pid) not in (None, "Z"):
        os.kill(pid, signal.SIGKILL)


def test_the_load_targets_credentials_are_not_on_locusts_command_line(world: dict[str, object], tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    web = world["web"]
    assert isinstance(web, ProcessInstance)
    url = f"http://loaduser:url-s3cret@127.0.0.1:{web.ports['http']}"
    experiment = write_experiment(world, steady=OK_STEADY, stack=stack_with_secrets(world, host_url=url))
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "chaos.py"), "run", str(experiment), "--runs-dir", str(runs), "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                        environ = Path(f"/proc/{entry}/environ").read_bytes().decode(errors="replace")
                    except OSError:
                        continue
                    if "locust" in cmdline and str(runs) in environ:  # ours: its metrics go to this run
                        seen.append(cmdline)
                        assert "url-s3cret" in environ  # the target is there, for Locust alone to read
            time.sleep(0.1)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == ExitCode.PASSED, out
    assert seen, "Locust was never seen running"
    assert all("url-s3cret" not in c for c in seen), seen
