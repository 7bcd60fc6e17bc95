"""The deployment tool's failure paths (a component that cannot start, bad arguments) and its `status` rules."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from clients.health import problem
from clients.procs import is_running, spawn
from stackspec.targets import HttpHealth, ProcessInstance, ProcessTarget, StackDescription
from tests.support.helpers import require_programs, wait_ready
from tradingstack import topology
from tradingstack.launcher import REPO_ROOT, LaunchError, stack_status, start_stack, stop_stack, write_state
from tradingstack.topology import LOWEST_PORT, ephemeral_range, free_ports

pytestmark = [pytest.mark.infra, pytest.mark.slow]


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and os.getpid() != int(entry.name):
                found.append(int(entry.name))
    return found


def test_a_component_that_cannot_start_is_named_and_everything_else_stopped(tmp_path: Path) -> None:
    require_programs("redis-server", "java")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [
            sys.executable,
            "-m",
            "tradingstack",
            "up",
            "--dir",
            str(tmp_path),
            "--port",
            f"redis={port}",
        ]
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "redis did not come up" in result.stderr
    assert "Address already in use" in result.stderr, "the tail of the redis log is shown"
    assert not (tmp_path / "state.json").exists()
    assert _processes_mentioning(str(tmp_path)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ports": {"matcher-9": 1234}}, "unknown --port name"),
        ({"profile": "huge"}, "unknown profile"),
        ({"matchers": 0}, "at least 1"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(LaunchError, match=message):
        start_stack(tmp_path, **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "logs").exists()


def test_service_ports_are_distinct_free_and_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    ports = free_ports(40)
    assert len(set(ports)) == 40
    assert all(LOWEST_PORT <= p <= 65535 and not low <= p <= high for p in ports)
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # still free to bind


def test_a_port_taken_between_choosing_and_binding_is_chosen_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program binds a chosen port before Redis does: the stack starts again on new ports."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        calls: list[int] = []

        def first_one_taken(count: int) -> list[int]:
            chosen = free_ports(count)
            calls.append(count)
            return [port, *chosen[1:]] if len(calls) == 1 else chosen  # the first port laid out is redis'

        monkeypatch.setattr(topology, "free_ports", first_one_taken)
        try:
            description = start_stack(tmp_path / "stack")
            redis = description.targets["redis"]
            assert isinstance(redis, ProcessTarget)
            assert redis.instances[0].ports["client"] != port
        finally:
            stop_stack(tmp_path / "stack")
    assert len(calls) > 2  # laid out twice (each lay-out asks for service and link ports)
    assert "Address already in use" in (tmp_path / "stack" / "logs" / "redis.log").read_text()


def test_status_shows_a_candidate_that_answers_200_as_unhealthy_with_the_reason(tmp_path: Path) -> None:
    """A service healthy by its own health check but not settled in its election is not healthy in `status`."""
    flip = Path(__file__).parents[1] / "injectors" / "flip_svc.py"
    instances = []
    for name, role in (("matcher-1", "leader"), ("matcher-2", "candidate")):
        port = free_ports(1)[0]
        script = json.dumps([{"health": 200, "role": role}])
        instances.append(
            spawn(
                ProcessInstance(
                    name=name,
                    argv=[sys.executable, str(flip), str(port), script],
                    log=str(tmp_path / f"{name}.log"),
                    health=HttpHealth(http=f"http://127.0.0.1:{port}/health"),
                    role_url=f"http://127.0.0.1:{port}/status",
                )
            )
        )
    write_state(tmp_path, StackDescription(name="t", targets={"matcher": ProcessTarget(instances=instances)}))
    try:
        for inst in instances:
            assert inst.health is not None
            wait_ready(inst.name, functools.partial(problem, inst.health), alive=functools.partial(is_running, inst))
        rows = {row.instance: row for row in stack_status(tmp_path)}
        assert rows["matcher-1"].healthy and rows["matcher-1"].role == "leader"
        stuck = rows["matcher-2"]
        assert not stuck.healthy and stuck.role == "candidate" and "role candidate" in (stuck.problem or "")
    finally:
        for inst in instances:
            assert inst.pid is not None
            os.kill(inst.pid, signal.SIGKILL)
            os.waitpid(inst.pid, 0)
