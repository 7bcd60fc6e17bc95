"""Process faults on instances found by `match` rules, as on a system whose PIDs nobody writes down."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.health import wait_healthy
from clients.procs import is_running, spawn, start_time_of, state_of
from engine.context import EngineContext
from engine.errors import InvalidInputError
from engine.events import EventBus
from engine.stack import LiveStack, read_description
from injectors.base import FaultPlan
from injectors.errors import TargetNotFoundError
from injectors.process.kill import ProcessKillInjector, ProcessKillSpec
from injectors.process.pause import ProcessPauseInjector, ProcessPauseSpec
from injectors.selection import Selection
from stackspec.match import ProcessMatch
from stackspec.targets import HttpHealth, ProcessInstance, ProcessTarget, StackDescription
from tests.support.helpers import free_port

SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


class Started:
    """PIDs this test started (and only those are killed at the end)."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def start(self, instance: ProcessInstance) -> int:
        running = spawn(instance)
        assert running.pid is not None and running.health is not None
        self.pids.append(running.pid)
        wait_healthy(running.health, 10)
        return running.pid

    def stop(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def by_rule(tmp_path: Path, name: str, port: int, rule: ProcessMatch) -> ProcessInstance:
    """An instance as a user writes it: how to start it and how to find it; no PID, no start time."""
    script = tmp_path / "web.py"
    script.write_text(SERVER)
    return ProcessInstance(
        name=name,
        argv=[sys.executable, str(script), str(port)],
        log=str(tmp_path / f"{name}.log"),
        health=HttpHealth(http=f"http://127.0.0.1:{port}/"),
        match=rule,
    )


@pytest.fixture
def started() -> Iterator[Started]:
    pids = Started()
    yield pids
    pids.stop()


def stack_of(tmp_path: Path, *instances: ProcessInstance) -> LiveStack:
    desc = StackDescription(name="rules", targets={"web": ProcessTarget(instances=list(instances))})
    return LiveStack(desc, tmp_path / "state.json")


def plan_of(injector: ProcessKillInjector | ProcessPauseInjector, stack: LiveStack, ctx: EngineContext) -> FaultPlan:
    refs = injector.resolve("web", Selection(name="web-1"), ctx)
    return FaultPlan(kind=injector.kind, target="web", params=injector.spec.model_dump(), targets=refs)


def live(stack: LiveStack, name: str = "web-1") -> ProcessInstance:
    group = stack.description.targets["web"]
    assert isinstance(group, ProcessTarget)
    return next(i for i in group.instances if i.name == name)


@pytest.mark.slow
def test_kill_finds_the_process_by_its_port_restarts_it_and_finds_the_new_one(tmp_path: Path, started: Started) -> None:
    port = free_port()
    instance = by_rule(tmp_path, "web-1", port, ProcessMatch(listen_port=port, cmdline=r"web\.py"))
    pid = started.start(instance)
    stack = stack_of(tmp_path, instance)
    ctx = EngineContext("test", stack, seed=1, bus=EventBus())
    injector = ProcessKillInjector(ProcessKillSpec())

    plan = plan_of(injector, stack, ctx)
    assert plan.targets[0].detail["pid"] == pid  # found on the live system, recorded for the rollback
    assert plan.targets[0].detail["start_time"] == start_time_of(pid)
    (killed,) = injector.inject(plan, ctx)
    assert killed.ok and start_time_of(pid) is None
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["restarted"] is True
    new_pid = live(stack).pid
    assert new_pid is not None and new_pid != pid and is_running(live(stack))
    started.pids.append(new_pid)
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok
    # The next fault's rule finds the restarted process, not the dead PID.
    assert plan_of(injector, stack, ctx).targets[0].detail["pid"] == new_pid


@pytest.mark.slow
def test_pause_by_pidfile(tmp_path: Path, started: Started) -> None:
    port = free_port()
    pidfile = tmp_path / "web.pid"
    instance = by_rule(tmp_path, "web-1", port, ProcessMatch(pidfile=str(pidfile)))
    pid = started.start(instance)
    pidfile.write_text(f"{pid}\n")
    stack = stack_of(tmp_path, instance)
    ctx = EngineContext("test", stack, seed=1, bus=EventBus())
    injector = ProcessPauseInjector(ProcessPauseSpec())
    plan = plan_of(injector, stack, ctx)
    (paused,) = injector.inject(plan, ctx)
    assert paused.ok and state_of(pid) == "T"
    (resumed,) = injector.rollback(plan, ctx)
    assert resumed.ok and state_of(pid) != "T" and live(stack).pid == pid


def test_a_rule_that_finds_none_or_several_is_refused_before_anything_is_done(tmp_path: Path, started: Started) -> None:
    ports = [free_port(), free_port()]
    shared = ProcessMatch(cmdline=rf"{tmp_path.name}/web\.py")  # both processes run this script
    web_1 = by_rule(tmp_path, "web-1", ports[0], shared)
    pids = [started.start(web_1), started.start(by_rule(tmp_path, "web-2", ports[1], shared))]
    ctx = EngineContext("test", stack_of(tmp_path, web_1), seed=1, bus=EventBus())
    injector = ProcessKillInjector(ProcessKillSpec())
    with pytest.raises(TargetNotFoundError, match=r"web-1: 2 processes \(pids .*\) on this host match cmdline"):
        injector.resolve("web", Selection(name="web-1"), ctx)
    gone = web_1.model_copy(update={"match": ProcessMatch(listen_port=free_port())})
    ctx = EngineContext("test", stack_of(tmp_path, gone), seed=1, bus=EventBus())
    with pytest.raises(TargetNotFoundError, match=r"web-1: no process on this host matches listen_port \d+; is it"):
        injector.resolve("web", None, ctx)
    assert all(state_of(pid) not in (None, "T", "Z") for pid in pids)  # nothing was signalled


def test_a_rule_that_cannot_work_is_refused_with_its_file_and_line(tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(
        "name: mine\nmarket_hours: null\ntargets:\n  web:\n    kind: process\n    instances:\n"
        "      - name: web-1\n        argv: [/bin/true]\n        match: {cmdline: 'nginx ('}\n"
    )
    with pytest.raises(InvalidInputError, match=r"stack\.yaml:9:\d+: .*match.*not a regular expression"):
        read_description(stack_file)
