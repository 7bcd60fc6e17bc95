"""process.kill and process.pause against real processes: right target, real effect, verified rollback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.health import STABLE_WINDOW_S, problem, role_at, wait_healthy
from clients.procs import is_running, spawn, start_time_of, state_of
from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan, TargetRef, TargetResult
from injectors.errors import FaultStillPresentError, InjectionError
from injectors.process.kill import ProcessKillInjector, ProcessKillSpec
from injectors.process.pause import ProcessPauseInjector, ProcessPauseSpec
from injectors.selection import Selection
from stackspec.targets import HttpHealth, ProcessInstance, ProcessTarget, StackDescription
from tests.support.helpers import free_port

SERVER = textwrap.dedent(
    """
    import json, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    port, role = int(sys.argv[1]), sys.argv[2]
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"role": role} if self.path == "/status" else {"status": "ok"}).encode()
            self.send_response(200); self.end_headers(); self.wfile.write(body)
        def log_message(self, *args):
            pass
    HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LiveStack]:
    script = tmp_path / "svc.py"
    script.write_text(SERVER)
    instances = []
    for i, role in enumerate(["leader", "follower", "follower"], start=1):
        port = free_port()
        inst = ProcessInstance(
            name=f"svc-{i}",
            argv=[sys.executable, str(script), str(port), role],
            log=str(tmp_path / f"svc-{i}.log"),
            health=HttpHealth(http=f"http://127.0.0.1:{port}/health"),
            role_url=f"http://127.0.0.1:{port}/status",
        )
        inst = spawn(inst)
        assert inst.health is not None
        wait_healthy(inst.health, 10)
        instances.append(inst)
    desc = StackDescription(name="test", targets={"svc": ProcessTarget(instances=instances)})
    live = LiveStack(desc, tmp_path / "state.json")
    yield live
    for inst in processes(live):
        if inst.pid is not None and is_running(inst):
            os.kill(inst.pid, signal.SIGCONT)
            os.kill(inst.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(inst.pid, 0)


def ctx_for(stack: LiveStack) -> EngineContext:
    return EngineContext("test", stack, seed=3, bus=EventBus())


def processes(stack: LiveStack) -> list[ProcessInstance]:
    target = stack.description.targets["svc"]
    assert isinstance(target, ProcessTarget)
    return target.instances


def instance(stack: LiveStack, name: str) -> ProcessInstance:
    return next(i for i in processes(stack) if i.name == name)


def plan_for(injector: ProcessKillInjector | ProcessPauseInjector, stack: LiveStack, select: Selection) -> FaultPlan:
    refs = injector.resolve("svc", select, ctx_for(stack))
    return FaultPlan(kind=injector.kind, target="svc", params=injector.spec.model_dump(), select=select, targets=refs)


@pytest.mark.slow
def test_kill_the_leader_then_restart_and_verify(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    injector = ProcessKillInjector(ProcessKillSpec())
    plan = plan_for(injector, stack, Selection(role="leader"))
    assert [t.id for t in plan.targets] == ["svc-1"]
    old_pid = instance(stack, "svc-1").pid
    assert old_pid is not None

    (result,) = injector.inject(plan, ctx)
    assert result.ok and result.detail["pid"] == old_pid and result.detail["signal"] == "SIGKILL"
    assert start_time_of(old_pid) is None
    assert instance(stack, "svc-1").pid is None
    with pytest.raises(FaultStillPresentError):
        injector.verify_one(plan.targets[0], plan, ctx)

    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["restarted"] is True
    new = instance(stack, "svc-1")
    assert new.pid not in (None, old_pid) and is_running(new)
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok
    # The state file records the new PID, so `stack down` and the next run find the process.
    saved = json.loads(Path(str(stack.path)).read_text())
    assert saved["targets"]["svc"]["instances"][0]["pid"] == new.pid
    # Rollback is idempotent: a second one restarts nothing.
    (again,) = injector.rollback(plan, ctx)
    assert again.ok and again.detail["restarted"] is False and instance(stack, "svc-1").pid == new.pid


@pytest.mark.slow
def test_sigterm_kill_and_count_selection(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    injector = ProcessKillInjector(ProcessKillSpec(signal="SIGTERM"))
    plan = plan_for(injector, stack, Selection(role="follower", count=2))
    assert sorted(t.id for t in plan.targets) == ["svc-2", "svc-3"]
    results = injector.inject(plan, ctx)
    assert all(r.ok and r.detail["signal"] == "SIGTERM" for r in results)
    assert instance(stack, "svc-1").pid is not None  # the leader was not touched
    assert all(r.ok for r in injector.rollback(plan, ctx))
    assert all(r.ok for r in injector.verify_gone(plan, ctx))


@pytest.mark.slow
def test_pause_freezes_and_rollback_resumes(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    injector = ProcessPauseInjector(ProcessPauseSpec())
    plan = plan_for(injector, stack, Selection(name="svc-2"))
    pid = instance(stack, "svc-2").pid
    assert pid is not None
    (result,) = injector.inject(plan, ctx)
    assert result.ok and state_of(pid) == "T"
    health = instance(stack, "svc-2").health
    assert health is not None and problem(health.model_copy(update={"timeout_s": 0.3})) is not None
    with pytest.raises(FaultStillPresentError, match="still stopped"):
        injector.verify_one(plan.targets[0], plan, ctx)
    assert all(r.ok for r in injector.rollback(plan, ctx))
    assert state_of(pid) != "T" and instance(stack, "svc-2").pid == pid
    assert all(r.ok for r in injector.verify_gone(plan, ctx))


@pytest.mark.slow
def test_recycled_pid_is_never_signalled(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    injector = ProcessKillInjector(ProcessKillSpec())
    plan = plan_for(injector, stack, Selection(name="svc-3"))
    real = instance(stack, "svc-3")
    # Pretend the PID now belongs to another process: its recorded start time no longer matches.
    stack.replace_instance("svc", real.model_copy(update={"start_time": (real.start_time or 0) + 1}))
    (result,) = injector.inject(plan, ctx)
    assert not result.ok and "no longer the process we resolved" in (result.error or "")
    assert real.pid is not None and start_time_of(real.pid) == real.start_time  # still alive
    stack.replace_instance("svc", real)


@pytest.mark.slow
def test_resolve_refuses_a_down_instance(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    down = instance(stack, "svc-2").model_copy(update={"pid": None})
    real = instance(stack, "svc-2")
    stack.replace_instance("svc", down)
    with pytest.raises(InjectionError, match="not running"):
        ProcessKillInjector(ProcessKillSpec()).resolve("svc", Selection(name="svc-2"), ctx)
    stack.replace_instance("svc", real)


def test_restart_that_dies_at_once_fails_the_rollback(tmp_path: Path) -> None:
    inst = ProcessInstance(
        name="x-1", argv=[sys.executable, "-c", "import sys; sys.exit(3)"], log=str(tmp_path / "x.log")
    )
    stack = LiveStack(StackDescription(name="t", targets={"x": ProcessTarget(instances=[inst])}), None)
    ctx = ctx_for(stack)
    injector = ProcessKillInjector(ProcessKillSpec(ready_timeout_s=1))
    plan = FaultPlan(kind="process.kill", target="x", targets=[TargetRef(id="x-1")])
    # The instance has no PID: rollback must start it, and it exits at once.
    (result,) = injector.rollback(plan, ctx)
    assert not result.ok and "exited right after restart" in (result.error or "")
    (verify,) = injector.verify_gone(plan, ctx)
    assert not verify.ok and "not running" in (verify.error or "")


FLIP_SVC = Path(__file__).with_name("flip_svc.py")
# What a resumed matching engine whose ZooKeeper session expired does: one or two 200s at once (it has
# not noticed yet), then 503 while it reconnects, then back. The counts make the transient exact:
# the rollback's health wait takes the first 200, a single-look verification the second.
TRANSIENT_200 = {"health": 200, "role": "follower", "answers": 2}


@contextlib.contextmanager
def flipping(tmp_path: Path, *phases: dict[str, object]) -> Iterator[LiveStack]:
    """A one-instance stack of tests/injectors/flip_svc.py playing `phases` (from its start and after SIGCONT)."""
    port = free_port()
    inst = ProcessInstance(
        name="flip-1",
        argv=[sys.executable, str(FLIP_SVC), str(port), json.dumps(list(phases))],
        log=str(tmp_path / "flip-1.log"),
        health=HttpHealth(http=f"http://127.0.0.1:{port}/health"),
        role_url=f"http://127.0.0.1:{port}/status",
    )
    live = LiveStack(StackDescription(name="flip", targets={"svc": ProcessTarget(instances=[spawn(inst)])}), None)
    try:
        yield live
    finally:
        for running in processes(live):
            if running.pid is not None and is_running(running):
                os.kill(running.pid, signal.SIGCONT)
                os.kill(running.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(running.pid, 0)


def wait_answers(stack: LiveStack, timeout_s: float = 10.0) -> None:
    """Until the flip service serves (any status): it starts in well under a second, even on a loaded machine."""
    (inst,) = processes(stack)
    assert inst.role_url is not None
    deadline = time.monotonic() + timeout_s
    while role_at(inst.role_url) is None:
        assert time.monotonic() < deadline, f"flip service did not answer within {timeout_s}s"
        time.sleep(0.05)


def paused_and_resumed(stack: LiveStack, timeout_s: float) -> tuple[TargetResult, float]:
    """process.pause of the flip service, rolled back, then verified: (the verification, seconds it took)."""
    ctx = ctx_for(stack)
    injector = ProcessPauseInjector(ProcessPauseSpec(ready_timeout_s=timeout_s))
    plan = plan_for(injector, stack, Selection(name="flip-1"))
    assert all(r.ok for r in injector.inject(plan, ctx))
    assert all(r.ok for r in injector.rollback(plan, ctx))  # SIGCONT: the service plays its script again
    started = time.monotonic()
    (verified,) = injector.verify_gone(plan, ctx)
    return verified, time.monotonic() - started


@pytest.mark.slow
def test_a_transient_200_then_503_after_resume_does_not_verify(tmp_path: Path) -> None:
    with flipping(tmp_path, TRANSIENT_200, {"health": 503, "role": "follower"}) as stack:
        wait_answers(stack)
        verified, took = paused_and_resumed(stack, timeout_s=3.0)
    # One look saw 200; the next ones 503 until the bound: the fault is not verified gone.
    assert not verified.ok and "answered 503" in (verified.error or ""), verified
    assert took >= 3.0


@pytest.mark.slow
def test_verification_waits_until_health_and_role_have_been_stable_for_the_window(tmp_path: Path) -> None:
    with flipping(
        tmp_path, TRANSIENT_200, {"health": 503, "role": "candidate", "for_s": 1.0}, {"health": 200, "role": "follower"}
    ) as stack:
        wait_answers(stack)
        verified, took = paused_and_resumed(stack, timeout_s=15.0)
    assert verified.ok, verified.error
    # Not before the 503s ended (1 s after the resume) and the answers then held for the window.
    assert took >= 1.0 + STABLE_WINDOW_S, took
    assert verified.detail.get("role") == "follower"


@pytest.mark.slow
def test_a_healthy_but_stuck_candidate_does_not_verify(tmp_path: Path) -> None:
    with flipping(tmp_path, {"health": 200, "role": "candidate"}) as stack:
        wait_answers(stack)
        verified, _ = paused_and_resumed(stack, timeout_s=2.5)
    assert not verified.ok and "role candidate" in (verified.error or ""), verified


@pytest.mark.slow
def test_a_restart_verifies_only_once_the_role_settled(tmp_path: Path) -> None:
    # From its start: healthy at once but "candidate" for 1.5 s, then follower (an engine joining the election).
    with flipping(
        tmp_path, {"health": 200, "role": "candidate", "for_s": 1.5}, {"health": 200, "role": "follower"}
    ) as stack:
        wait_answers(stack)
        ctx = ctx_for(stack)
        injector = ProcessKillInjector(ProcessKillSpec(ready_timeout_s=15.0))
        plan = plan_for(injector, stack, Selection(name="flip-1"))
        assert all(r.ok for r in injector.inject(plan, ctx))
        (undone,) = injector.rollback(plan, ctx)
        assert undone.ok and undone.detail["restarted"] is True, undone.error
        restarted = time.monotonic()
        (verified,) = injector.verify_gone(plan, ctx)
        took = time.monotonic() - restarted
    assert verified.ok, verified.error
    assert took >= 1.0, f"verified {took:.3f}s after the restart, while the role was still candidate"
    assert verified.detail.get("role") == "follower"
