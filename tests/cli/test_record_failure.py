"""A full runs directory never leaves a fault in place: refused at preflight, or aborted and rolled back mid-run.

The runs directory is a real tmpfs the test mounts (root only), so "no space left on device" comes from
the kernel, exactly as on a full disk. Mid-run, the disk is filled while two overlapping faults are in
place: every journal write from then on fails, and the run must still roll both back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.procs import state_of
from engine.errors import ExitCode
from engine.undo import LEDGER_FILE, UndoLedger
from stackspec.targets import ProcessInstance
from tests.support.cli_world import OK_STEADY, write_experiment
from tests.support.helpers import ROOT, chaos

pytestmark = [pytest.mark.slow, pytest.mark.infra]

TWO_PAUSES = """guards: {max_concurrent_faults: 2}"""


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` for the test, unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system says it is full; returns it (delete it to free the space)."""
    filler = directory / "filler.bin"
    chunk = b"\xff" * (1 << 20)
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(chunk)
            handle.flush()
    return filler


def both_injected(runs: Path) -> bool:
    for path in runs.glob("*/journal.json"):
        with contextlib.suppress(ValueError, OSError, KeyError):
            faults = json.loads(path.read_text())["faults"]
            if len(faults) == 2 and all(f["status"] == "injected" for f in faults):
                return True
    return False


def pauses(world: dict[str, object]) -> Path:
    """Two overlapping process.pause faults, one per service: the older is rolled back last."""
    path = write_experiment(world, steady=OK_STEADY, extra=TWO_PAUSES)
    text = path.read_text().replace(
        "  - {at: 4s, duration: 2s, kind: process.kill, target: svc, select: {role: leader}}",
        "  - {at: 4s, duration: 5s, kind: process.pause, target: svc, select: {name: svc-1}}\n"
        "  - {at: 5s, duration: 4s, kind: process.pause, target: svc, select: {name: svc-2}}",
    )
    assert "process.pause" in text
    path.write_text(text.replace("duration: 11s", "duration: 12s"))
    return path


def frozen(world: dict[str, object]) -> list[str]:
    svc = world["svc"]
    assert isinstance(svc, list)
    return [i.name for i in svc if isinstance(i, ProcessInstance) and i.pid and state_of(i.pid) == "T"]


def test_a_runs_directory_too_full_for_a_record_is_refused_at_preflight(
    world: dict[str, object], tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "runs", "300k") as runs:
        result = chaos("run", str(pauses(world)), "--runs-dir", str(runs))
        assert result.returncode == ExitCode.CANNOT_RUN, result.stdout + result.stderr
        assert "MB free; a run needs at least 64 MB" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        assert UndoLedger(runs / LEDGER_FILE).pending() == []  # nothing was injected
    assert frozen(world) == []


def test_a_disk_that_fills_mid_run_aborts_it_and_every_fault_is_still_rolled_back(
    world: dict[str, object], tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "runs", "40m") as runs:
        env = {**os.environ, "CHAOS_MIN_FREE_MB": "16"}
        runner = subprocess.Popen(
            [sys.executable, str(ROOT / "chaos.py"), "run", str(pauses(world)), "--runs-dir", str(runs)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not both_injected(runs):
                assert runner.poll() is None and time.monotonic() < deadline, "the faults were never injected"
                time.sleep(0.05)
            assert frozen(world) == ["svc-1", "svc-2"]
            filler = fill(runs)
            out, err = runner.communicate(timeout=120)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait(timeout=10)
        assert runner.returncode == ExitCode.RECORD_FAILED, out + err
        assert frozen(world) == [], "a fault was left in place"
        assert "Traceback" not in out + err
        assert "RECORD INCOMPLETE" in err and "the run is being stopped" in err
        (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
        journal = json.loads((run_dir / "journal.json").read_text())
        assert journal["verdict"] == "aborted", "the last journal write used the reserve"
        assert [f["status"] for f in journal["faults"]] == ["rolled_back", "rolled_back"]
        assert not list(run_dir.glob(".space-reserve"))
        # The load generator was stopped with the run, not left loading.
        locusts = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(int(p), str(run_dir))]
        assert locusts == []
        # Rolled back, but the ledger could not say so: recover verifies them once there is room again.
        filler.unlink()
        recovered = chaos("recover", "--runs-dir", str(runs))
        assert recovered.returncode == ExitCode.PASSED, recovered.stdout + recovered.stderr
        assert UndoLedger(runs / LEDGER_FILE).pending() == []
    assert frozen(world) == []


def _cmdline_has(pid: int, text: str) -> bool:
    try:
        return text in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
