"""Supervised services: a killed process brought back by a restart command or by its supervisor, found anew.

Against tests/support/mini_supervisor.py, a real supervisor (there is no systemd here), locally and with
the restart command run over a real loopback sshd.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from clients.host_scripts import run_script
from clients.procs import start_time_of
from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan, TargetResult
from injectors.errors import TargetNotFoundError
from injectors.process.kill import ProcessKillInjector, ProcessKillSpec
from stackspec.match import ProcessMatch
from stackspec.restart import Restart
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tests.injectors.sshd_server import Sshd, start_sshd
from tests.support.supervised import Supervised, supervised

pytestmark = [pytest.mark.slow]


def stack_of(instance: ProcessInstance, tmp_path: Path) -> LiveStack:
    desc = StackDescription(name="supervised", targets={"web": ProcessTarget(instances=[instance])}, market_hours=None)
    return LiveStack(desc, tmp_path / "state.json")


def ctx_for(stack: LiveStack) -> EngineContext:
    return EngineContext("restart-test", stack, seed=1, bus=EventBus())


def current(stack: LiveStack) -> ProcessInstance:
    group = stack.target("web")
    assert isinstance(group, ProcessTarget)
    return group.instances[0]


def kill_and_roll_back(stack: LiveStack, service: Supervised) -> tuple[FaultPlan, TargetResult, float]:
    """Kill the supervised child through process.kill; the rollback's result and how long it took."""
    injector = ProcessKillInjector(ProcessKillSpec(ready_timeout_s=10))
    ctx = ctx_for(stack)
    refs = injector.resolve("web", None, ctx)
    plan = FaultPlan(kind=injector.kind, target="web", targets=refs)
    old = service.child_pid()
    assert refs[0].detail["pid"] == old
    (killed,) = injector.inject(plan, ctx)
    assert killed.ok, killed.error
    assert old is not None
    wait_gone_or_zombie(old)
    began = time.monotonic()
    (undone,) = injector.rollback(plan, ctx)
    took = time.monotonic() - began
    if undone.ok:
        (verified,) = injector.verify_gone(plan, ctx)
        assert verified.ok, verified.error
    return plan, undone, took


def wait_gone_or_zombie(pid: int) -> None:
    deadline = time.monotonic() + 10
    while start_time_of(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert start_time_of(pid) is None


@pytest.fixture
def never(tmp_path: Path) -> Iterator[Supervised]:
    with supervised(tmp_path, delay_s=None) as service:
        yield service


def test_by_command_runs_it_finds_the_new_process_and_a_daemon_holding_stdout_does_not_hang(
    tmp_path: Path, never: Supervised
) -> None:
    command = never.start_command("--hold-stdout")
    stack = stack_of(never.instance(Restart(by="command", command=command, timeout_s=10)), tmp_path)
    old = never.child_pid()

    _, undone, took = kill_and_roll_back(stack, never)

    assert undone.ok, undone.error
    assert undone.detail["restart_by"] == "command" and undone.detail["restart_command"] == command
    new = never.child_pid()
    assert new not in (None, old) and undone.detail["pid"] == new == current(stack).pid
    assert 0 < undone.detail["appeared_after_s"] < 10 and never.healthy()
    # The command left a process holding its stdout for a minute: the rollback did not wait for it.
    assert (never.control / "lingerer.pid").exists() and took < 15


def test_by_supervisor_waits_and_records_the_process_it_started(tmp_path: Path) -> None:
    with supervised(tmp_path, delay_s=0.5) as service:
        stack = stack_of(service.instance(Restart(by="supervisor", timeout_s=10)), tmp_path)
        old = service.child_pid()

        _, undone, _ = kill_and_roll_back(stack, service)

        assert undone.ok, undone.error
        assert undone.detail["restart_by"] == "supervisor" and "restart_command" not in undone.detail
        assert undone.detail["pid"] == service.child_pid() != old
        assert undone.detail["appeared_after_s"] >= 0 and current(stack).pid == undone.detail["pid"]


def test_a_supervisor_that_never_restarts_is_a_clean_bounded_rollback_failure(
    tmp_path: Path, never: Supervised
) -> None:
    stack = stack_of(never.instance(Restart(by="supervisor", timeout_s=1.5)), tmp_path)

    _, undone, took = kill_and_roll_back(stack, never)

    assert not undone.ok and undone.error is not None
    assert "not brought back by its supervisor on this host within 1.5s" in undone.error, undone.error
    assert "no new process matching pidfile" in undone.error
    assert took < 6 and not never.healthy()


def test_a_failing_restart_command_is_a_rollback_failure_with_its_exit_status_and_output(
    tmp_path: Path, never: Supervised
) -> None:
    # The command of a supervisor that does not run: mini_supervisor exits 3 and says why.
    command = never.start_command()
    command[command.index("--control") + 1] = str(tmp_path / "nobody-here")
    stack = stack_of(never.instance(Restart(by="command", command=command, timeout_s=5)), tmp_path)

    _, undone, took = kill_and_roll_back(stack, never)

    assert not undone.ok and undone.error is not None
    assert "exited with status 3" in undone.error and "no supervisor runs for" in undone.error, undone.error
    assert took < 6


def test_a_missing_restart_program_is_refused_at_resolve_naming_target_instance_and_host(
    tmp_path: Path, never: Supervised
) -> None:
    restart = Restart(by="command", command=["/opt/nowhere/restart-web", "now"])
    stack = stack_of(never.instance(restart), tmp_path)
    with pytest.raises(TargetNotFoundError) as refused:
        ProcessKillInjector(ProcessKillSpec()).resolve("web", None, ctx_for(stack))
    message = str(refused.value)
    assert "target 'web', instance web-1" in message and "'/opt/nowhere/restart-web'" in message
    assert "on this host" in message
    assert never.child_pid() is not None and never.healthy()  # nothing was killed


@pytest.mark.infra
def test_by_command_over_ssh_runs_the_command_on_the_host(tmp_path: Path, never: Supervised) -> None:
    sshd: Sshd = start_sshd(tmp_path / "sshd")
    try:
        command = never.start_command("--hold-stdout")
        instance = never.instance(Restart(by="command", command=command, timeout_s=10), host=sshd.host())
        stack = stack_of(instance, tmp_path)
        old = never.child_pid()

        _, undone, took = kill_and_roll_back(stack, never)

        assert undone.ok, undone.error
        assert undone.detail["restart_by"] == "command" and undone.detail["host"] == sshd.host().label
        assert undone.detail["pid"] == never.child_pid() != old and took < 15
        # The command really ran through sshd, and a process holding its stdout did not hold the channel.
        assert "Starting session: command" in sshd.log.read_text()
        assert (never.control / "lingerer.pid").exists()
        # A program missing on that host is refused at resolve, naming the host.
        missing = never.instance(Restart(by="command", command=["no-such-restart-tool"]), host=sshd.host())
        with pytest.raises(TargetNotFoundError, match=f"is not installed on {sshd.host().label}"):
            ProcessKillInjector(ProcessKillSpec()).resolve("web", None, ctx_for(stack_of(missing, tmp_path)))
    finally:
        sshd.stop()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"by": "command"}, "needs `command`"),
        ({"by": "command", "command": "systemctl restart web"}, "never a shell string"),
        ({"by": "command", "command": ["systemctl restart web"]}, "one string with spaces"),
        ({"by": "supervisor", "command": ["x"]}, "goes with `by: command`"),
    ],
)
def test_bad_restart_settings_are_refused_with_the_fix(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Restart.model_validate(fields)


def test_argv_may_be_left_out_only_for_a_managed_restart_with_match_rules() -> None:
    rule = ProcessMatch(cmdline="web")
    ProcessInstance(name="a", match=rule, restart=Restart(by="supervisor"))
    with pytest.raises(ValidationError, match="no `argv`"):
        ProcessInstance(name="a", match=rule)
    with pytest.raises(ValidationError, match="no `argv`"):
        ProcessInstance(name="a", restart=Restart(by="supervisor"))


def test_the_remote_run_script_reports_status_and_output_and_is_bounded_on_the_host() -> None:
    """The script RemoteHost.run sends, run by a real sh: every argument quoted, output tail, exit status."""
    tricky = ["sh", "-c", 'echo "$1"; echo oops >&2; exit 7', "sh", "it's $(not) `run`"]
    done = subprocess.run(["sh", "-s"], input=run_script(tricky, 5), capture_output=True, text=True, timeout=10)
    assert (done.returncode, done.stdout) == (7, "it's $(not) `run`\noops\n")
    began = time.monotonic()
    slow = subprocess.run(
        ["sh", "-s"], input=run_script(["sleep", "30"], 0.5), capture_output=True, text=True, timeout=10
    )
    assert slow.returncode == 124 and time.monotonic() - began < 5
