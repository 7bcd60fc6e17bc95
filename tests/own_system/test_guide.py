"""docs/own-system.md, followed step by step through the CLI on a system the framework did not start.

The system (tests/own_system/system.py): Debian nginx in front of two gunicorn backends of a PyPI web
app, each under its own supervisor, and a Debian redis-server. Discover → edit the draft as the guide
says → check → dry run → run (each backend killed once: one brought back by its restart command, the
other by its supervisor) → report → status.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.errors import ExitCode
from engine.journal import load_journal
from tests.own_system.system import OwnSystem, own_system
from tests.support.helpers import ROOT, chaos

pytestmark = [pytest.mark.slow, pytest.mark.infra]

GUIDE = ROOT / "docs" / "own-system.md"


def _by_port(draft: dict[str, Any], port: int) -> dict[str, Any]:
    """The draft's instance that discover found listening on `port`."""
    for target in draft["targets"].values():
        for instance in target["instances"]:
            if instance.get("ports", {}).get("client") == port:
                return dict(instance)
    raise AssertionError(f"discover did not find the process on port {port}: {json.dumps(draft)[:2000]}")


def edited(draft: dict[str, Any], system: OwnSystem) -> dict[str, Any]:
    """What the guide's "Edit the draft" step says: keep your targets, name them, say how each comes back."""
    front = _by_port(draft, system.port)
    cache = _by_port(draft, system.redis_port)
    backends = []
    for backend in system.backends:
        instance = _by_port(draft, backend.port)
        # Two backends of one program: the command-line rule would find both; the supervisor's pid file
        # names exactly one.
        instance["match"] = {"pidfile": str(backend.pidfile)}
        instance["health"] = {"http": f"http://127.0.0.1:{backend.port}/", "timeout_s": 1.0}
        instance.pop("argv", None)
        by_command = backend.name == "backend-1"
        instance["restart"] = (
            {"by": "command", "command": backend.start_command(), "timeout_s": 20}
            if by_command
            else {"by": "supervisor", "timeout_s": 20}
        )
        backends.append({**instance, "name": backend.name})
    return {
        "name": "own-web",
        "production": False,
        "market_hours": None,
        "endpoints": {"front": system.url.rstrip("/")},
        "targets": {
            "front": {"instances": [{**front, "name": "nginx"}]},
            "web": {"instances": backends},
            "cache": {"instances": [{**cache, "name": "redis"}]},
        },
    }


EXPERIMENT = """\
version: 1
title: Each web backend killed once behind nginx
stack: {{file: my-system.yaml}}
load: {{locustfile: {locustfile}, users: 4, spawn_rate: 4, duration: 26s, warmup: 2s, host: front}}
steady_state:
  - {{name: errors, metric: error_rate, max: 0.01}}
  - {{name: front answers, http: {{url: "{{front}}/"}}}}
method:
  - {{at: 5s, duration: 3s, kind: process.kill, target: web, select: {{name: backend-1}}}}
  - {{at: 13s, duration: 3s, kind: process.kill, target: web, select: {{name: backend-2}}}}
objectives: {{rto: 10s}}
integrity: []
recovery: {{stable_for: 2s}}
"""


def test_the_guide_takes_a_new_user_from_discover_to_a_passed_run(tmp_path: Path) -> None:
    guide = GUIDE.read_text()
    for step in ("stack discover", "stack check", "backends.yaml --dry-run", "chaos.py run", "report", "stack status"):
        assert step in guide, step
    with own_system(tmp_path / "system") as system:
        work = tmp_path / "work"
        work.mkdir()
        draft_path = work / "draft.yaml"

        found = chaos("stack", "discover", "--out", str(draft_path))
        assert found.returncode == 0, found.stdout + found.stderr
        assert re.search(rf"127\.0\.0\.1:{system.port}\s+nginx: master process", found.stdout), found.stdout
        draft = yaml.safe_load(draft_path.read_text())

        stack = work / "my-system.yaml"
        stack.write_text(yaml.safe_dump(edited(draft, system), sort_keys=False))
        checked = chaos("stack", "check", str(stack))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for name in ("nginx", "backend-1", "backend-2", "redis"):
            assert name in checked.stdout

        experiment = work / "backends.yaml"
        experiment.write_text(EXPERIMENT.format(locustfile=ROOT / "loadgen" / "http_get.py"))
        dry = chaos("run", str(experiment), "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr

        before = [b.pid() for b in system.backends]
        runs = work / "runs"
        result = chaos("run", str(experiment), "--runs-dir", str(runs), "--seed", "7")
        assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
        (journal_path,) = runs.glob("*/journal.json")
        journal = load_journal(journal_path)
        assert [f.status for f in journal.faults] == ["rolled_back", "rolled_back"]
        assert [f.rollback[0].detail["restart_by"] for f in journal.faults] == ["command", "supervisor"]
        after = [b.pid() for b in system.backends]
        assert all(a is not None and a != b for a, b in zip(after, before, strict=True)), (before, after)

        report = chaos("report", str(journal_path), "--out", str(work / "report"))
        assert report.returncode == 0, report.stdout + report.stderr
        assert "Each web backend killed once behind nginx" in (work / "report" / "report.html").read_text()

        # The new PIDs are the live state: status finds both backends, running and healthy.
        status = chaos("stack", "status", str(stack))
        assert status.returncode == 0, status.stdout + status.stderr
        for pid in after:
            assert str(pid) in status.stdout, status.stdout
