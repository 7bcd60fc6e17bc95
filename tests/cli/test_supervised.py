"""`chaos.py run` against a supervised service: killed, brought back by its restart command, journaled as such."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ExitCode
from engine.journal import load_journal
from stackspec.restart import Restart
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tests.support.cli_world import OK_STEADY, only_journal, write_experiment
from tests.support.helpers import chaos
from tests.support.supervised import Supervised, supervised

pytestmark = [pytest.mark.slow]


def stack_with(world: dict[str, object], instance: ProcessInstance) -> StackDescription:
    web = world["web"]
    assert isinstance(web, ProcessInstance)
    return StackDescription(
        name="supervised-cli",
        endpoints={"web": f"http://127.0.0.1:{web.ports['http']}"},
        targets={"svc": ProcessTarget(instances=[instance]), "web": ProcessTarget(instances=[web])},
        market_hours=None,
    )


def experiment_for(world: dict[str, object], service: Supervised, restart: Restart) -> Path:
    stack = stack_with(world, service.instance(restart))
    return write_experiment(world, steady=OK_STEADY, stack=stack, select="{name: sup-1}")


def test_run_kills_a_supervised_service_and_its_restart_command_brings_it_back(
    world: dict[str, object], tmp_path: Path
) -> None:
    with supervised(tmp_path / "sup", "sup-1", delay_s=None) as service:
        old = service.child_pid()
        experiment = experiment_for(world, service, Restart(by="command", command=service.start_command()))
        runs = tmp_path / "runs"

        result = chaos("run", str(experiment), "--runs-dir", str(runs), "--seed", "1")

        assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
        (fault,) = load_journal(only_journal(runs)).faults
        assert fault.status == "rolled_back" and fault.inject[0].detail["pid"] == old
        (undone,) = fault.rollback
        assert undone.detail["restart_by"] == "command" and undone.detail["restart_command"] == service.start_command()
        assert undone.detail["pid"] == service.child_pid() != old and service.healthy()


def test_a_dry_run_refuses_a_restart_program_missing_on_the_host(world: dict[str, object], tmp_path: Path) -> None:
    with supervised(tmp_path / "sup", "sup-1", delay_s=None) as service:
        restart = Restart(by="command", command=["/opt/nowhere/bin/restart-sup", "sup-1"])
        experiment = experiment_for(world, service, restart)

        result = chaos("run", str(experiment), "--runs-dir", str(tmp_path / "runs"), "--dry-run")

        assert result.returncode == ExitCode.CANNOT_RUN, result.stdout + result.stderr
        shown = result.stdout + result.stderr
        assert "instance sup-1" in shown and "'/opt/nowhere/bin/restart-sup' is not installed on this host" in shown
        assert "Traceback" not in shown and service.healthy()
