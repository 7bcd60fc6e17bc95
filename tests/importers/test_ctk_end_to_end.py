"""End to end: a Chaos Toolkit experiment converted and run against a live reference stack, its fault rolled back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ExitCode
from engine.journal import load_journal
from tests.importers.ctk_support import FIXTURES, GATEWAY

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.infra]


def test_chaos_py_runs_a_chaos_toolkit_file_as_it_is_and_its_fault_is_rolled_back_and_verified(
    tmp_path: Path,
) -> None:
    """`chaos.py run FILE.json`: converted in memory (nothing written beside it), the conversion journaled."""
    source = FIXTURES / "matcher-kill.json"
    before = sorted(p.name for p in FIXTURES.iterdir())
    # A shorter timeline than the defaults, as the other end-to-end tests shorten theirs; the document is unchanged.
    shorter = ["--users", "8", "--warmup", "4s", "--baseline", "4s", "--min-fault", "8s", "--recovery", "8s"]
    ((url, name),) = GATEWAY.items()
    runs = tmp_path / "runs"
    command = [sys.executable, str(ROOT / "chaos.py"), "run", str(source), "--stack-up", "--runs-dir", str(runs)]
    result = subprocess.run(
        [*command, "--endpoint", f"{url}={name}", *shorter],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
        check=False,
    )
    journals = list(runs.glob("*/journal.json"))
    assert len(journals) == 1, result.stdout + result.stderr
    assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
    assert "a Chaos Toolkit experiment, converted" in result.stdout
    assert sorted(p.name for p in FIXTURES.iterdir()) == before  # nothing written next to the source
    journal = load_journal(journals[0])
    (note,) = [e for e in journal.events if "conversion" in e.data.get("details", {})]
    assert any("process.kill of matcher-1" in line for line in note.data["details"]["conversion"])

    (fault,) = journal.faults
    assert (fault.kind, fault.target, fault.name) == ("process.kill", "matcher", "kill-matching-engine-1")
    assert fault.status == "rolled_back"
    (killed,) = fault.inject
    assert killed.ok and killed.detail["signal"] == "SIGKILL"
    (restart,) = fault.rollback
    assert restart.ok and restart.detail["restarted"] is True and restart.detail["pid"] != killed.detail["pid"]
    assert fault.verify and all(v.ok for v in fault.verify)  # the restarted engine is healthy and settled
    assert fault.recovery is not None and fault.recovery.recovered
    # The hypothesis Chaos Toolkit judges after the method became the RTO objective, and it was met.
    assert ("rto", True) in [(o.name, o.met) for o in journal.objectives]
