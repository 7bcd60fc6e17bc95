"""The CI examples in deploy/ci/ work as written: their project commands are run here, exactly."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helpers import ROOT, require_programs

CI_DIR = ROOT / "deploy" / "ci"


def github() -> dict[str, Any]:
    return dict(yaml.safe_load((CI_DIR / "github-actions.yml").read_text()))


def gitlab() -> dict[str, Any]:
    return dict(yaml.safe_load((CI_DIR / "gitlab-ci.yml").read_text()))


def github_commands() -> list[str]:
    return [step["run"] for step in github()["jobs"]["resilience"]["steps"] if "run" in step]


def gitlab_commands() -> list[str]:
    job = gitlab()["resilience"]
    return [*job["before_script"], *job["script"]]


def project_commands(commands: list[str]) -> list[str]:
    """The commands that run the project (the rest installs the CI machine's system packages)."""
    return [c for c in commands if c.startswith(("bash scripts/", ".venv/bin/python chaos.py"))]


PACKAGE_LIST = "scripts/debian-packages.txt"
INSTALL_FROM_LIST = f"sed 's/#.*//' {PACKAGE_LIST} | xargs"


def apt_named_packages(commands: list[str]) -> set[str]:
    """The packages named literally on the examples' `apt-get install` lines (not read from the list)."""
    named: set[str] = set()
    for command in commands:
        for part in command.split("&&"):
            if "apt-get install" in part:
                words = shlex.split(part.split("apt-get install", 1)[1].split("|")[0])
                named |= {w for w in words if not w.startswith("-") and w != "sudo"}
    return named


def list_names(path: str) -> list[str]:
    """The package names of a list, as scripts/packages.sh reads them."""
    script = f". scripts/packages.sh && package_names {shlex.quote(path)}"
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.split()


def test_both_examples_install_the_package_list_and_run_the_same_project_commands() -> None:
    for commands, extra in ((github_commands(), set()), (gitlab_commands(), {"python3", "python3-venv"})):
        # The system packages come from the project's one list, never repeated in the CI file.
        assert apt_named_packages(commands) == extra
        assert any(INSTALL_FROM_LIST in c and "apt-get install" in c.split(INSTALL_FROM_LIST, 1)[1] for c in commands)
    assert project_commands(github_commands()) == project_commands(gitlab_commands())
    assert project_commands(github_commands()) == [
        "bash scripts/setup.sh",
        ".venv/bin/python chaos.py run experiments/ci-smoke.yaml --stack-up --ci",
    ]
    # Both publish the same outputs, and JUnit is wired into each platform's test report.
    github_paths = next(
        s for s in github()["jobs"]["resilience"]["steps"] if s.get("uses", "").startswith("actions/upload")
    )
    assert github_paths["with"]["path"].split() == gitlab()["resilience"]["artifacts"]["paths"]
    assert gitlab()["resilience"]["artifacts"]["reports"]["junit"] == "runs/*/junit.xml"


def test_the_examples_sed_reads_the_same_names_as_setup() -> None:
    """What `sed 's/#.*//' LIST | xargs` hands apt-get is exactly the list's names, comments and tags left out."""
    done = subprocess.run(
        ["bash", "-c", f"{INSTALL_FROM_LIST} echo"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    names = list_names(PACKAGE_LIST)
    assert done.stdout.split() == names
    assert {"redis-server", "zookeeper", "libslf4j-java"} <= set(names)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", name) for name in names), names


def run_commands(commands: list[str], runs: Path, summary: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "CI": "true", "CHAOS_RUNS_DIR": str(runs), "GITHUB_STEP_SUMMARY": str(summary)}
    results = []
    for command in commands:
        # The command line exactly as the CI file has it, run by the shell the CI runner uses.
        result = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        results.append(result)
        if result.returncode != 0:
            break
    return results


@pytest.mark.slow
@pytest.mark.infra
def test_the_resilience_stage_passes_and_publishes_its_artifacts(tmp_path: Path) -> None:
    require_programs("redis-server", "java")
    runs, summary = tmp_path / "runs", tmp_path / "step-summary.md"
    results = run_commands(project_commands(github_commands()), runs, summary)
    assert [r.returncode for r in results] == [0, 0], results[-1].stdout[-3000:] + results[-1].stderr[-3000:]
    for pattern in gitlab()["resilience"]["artifacts"]["paths"]:
        found = list(runs.glob(pattern.removeprefix("runs/")))
        assert len(found) == 1, pattern
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert "**PASSED**" in summary.read_text() and summary.read_text() == (run_dir / "summary.md").read_text() + "\n"
    assert 'failures="0"' in (run_dir / "junit.xml").read_text()


@pytest.mark.slow
@pytest.mark.infra
def test_a_deviated_hypothesis_fails_the_job(tmp_path: Path) -> None:
    require_programs("redis-server", "java")
    # The same command on a copy of the experiment whose hypothesis cannot hold: the job must fail.
    experiment = (ROOT / "experiments" / "ci-smoke.yaml").read_text().replace("max: 250", "max: 0.001")
    copy = ROOT / "experiments" / f".ci-smoke-deviating-{os.getpid()}.yaml"
    copy.write_text(experiment)
    try:
        (command,) = [c for c in project_commands(github_commands()) if "chaos.py run" in c]
        (result,) = run_commands(
            [command.replace("experiments/ci-smoke.yaml", str(copy))], tmp_path / "runs", tmp_path / "s.md"
        )
    finally:
        copy.unlink()
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "DEVIATED" in (tmp_path / "s.md").read_text()
