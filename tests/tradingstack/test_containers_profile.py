"""The containers profile for real: the matching engines as podman containers, killed under load by a drill."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.container_engine import engine
from engine.context import EngineContext
from engine.errors import ExitCode
from engine.events import EventBus
from engine.journal import load_journal
from engine.stack import LiveStack, reference_targets
from injectors.base import FaultPlan
from injectors.container.kill import ContainerKillInjector, ContainerKillSpec
from injectors.container.network_disconnect import ContainerNetworkDisconnectInjector, ContainerNetworkDisconnectSpec
from injectors.errors import InjectionError
from injectors.selection import Selection
from stackspec.targets import ContainerTarget, HttpHealth, ProcessTarget
from tests.injectors.podman_engine import engine_url
from tests.support.helpers import ROOT, require_programs
from tests.tradingstack.support import place, shape, wait_for
from tradingstack import containers
from tradingstack.describe import describe
from tradingstack.launcher import read_state, stack_status, start_stack, stop_stack

pytestmark = [pytest.mark.slow, pytest.mark.infra]


@pytest.fixture(scope="module")
def docker_host() -> Iterator[str]:
    require_programs("redis-server", "java")
    url = engine_url()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", url)  # how users point the stack (and chaos.py) at their engine
        yield url


@pytest.fixture(scope="module")
def stack(docker_host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("containers")
    try:
        start_stack(directory, profile="containers", timeout_s=60)
        yield directory
    finally:
        stop_stack(directory)


def matcher_target(directory: Path) -> ContainerTarget:
    state = read_state(directory)
    assert state is not None
    target = state.targets["matcher"]
    assert isinstance(target, ContainerTarget)
    return target


def roles(target: ContainerTarget) -> dict[str, str | None]:
    return {member.name: containers.role(member) for member in target.containers}


def test_the_matchers_run_as_containers_and_the_description_says_so(stack: Path, docker_host: str) -> None:
    state = read_state(stack)
    assert state is not None and state.profile == "containers"
    target = matcher_target(stack)
    assert target.engine_url == docker_host
    assert [m.name for m in target.containers] == ["matcher-1", "matcher-2"]
    assert all(isinstance(t, ProcessTarget) for n, t in state.targets.items() if n in ("redis", "zookeeper", "gateway"))
    with engine(target.engine_url, 10) as client:
        for member in target.containers:
            assert member.container is not None
            current = client.inspect(member.container)
            assert current.up and current.network_mode == "host"
            assert current.labels[containers.STACK_LABEL] == target.labels[containers.STACK_LABEL]
            assert isinstance(member.health, HttpHealth) and member.health.http.startswith("http://127.0.0.1:")
    assert sorted(roles(target).values(), key=str) == ["follower", "leader"]
    rows = stack_status(stack)
    assert {r.instance for r in rows if r.target == "matcher"} == {"matcher-1", "matcher-2"}
    assert all(r.healthy for r in rows), [r for r in rows if not r.healthy]
    assert shape(state) == shape(describe("containers"))
    assert {name: t.kind for name, t in state.targets.items()} == reference_targets("containers")


def test_killing_the_leader_container_fails_over_and_rollback_starts_it(stack: Path) -> None:
    state = read_state(stack)
    assert state is not None
    ctx = EngineContext("t", LiveStack(state, None), seed=1, bus=EventBus())
    injector = ContainerKillInjector(ContainerKillSpec())
    select = Selection(role="leader")
    plan = FaultPlan(
        kind=injector.kind, target="matcher", select=select, targets=injector.resolve("matcher", select, ctx)
    )
    (ref,) = plan.targets
    target = matcher_target(stack)
    gateway = state.endpoints["gateway"]

    (killed,) = injector.inject(plan, ctx)
    assert killed.ok and killed.detail["exit_code"] == 137, killed.error
    wait_for("the standby to lead", lambda: [r for n, r in roles(target).items() if n != ref.id] == ["leader"], 15)
    wait_for("orders to be accepted again", lambda: place(gateway, "ACC0051", "600000", "buy", 1, 1.0)[0] == 201, 15)

    (started,) = injector.rollback(plan, ctx)
    assert started.ok and started.detail["action"] == "started", started.error
    assert injector.verify_gone(plan, ctx)[0].ok
    wait_for("the restarted engine to follow", lambda: roles(target)[ref.id] == "follower", 15)


def test_network_disconnect_is_refused_before_anything_happens_on_the_host_network(stack: Path) -> None:
    state = read_state(stack)
    assert state is not None
    ctx = EngineContext("t", LiveStack(state, None), seed=1, bus=EventBus())
    injector = ContainerNetworkDisconnectInjector(ContainerNetworkDisconnectSpec())
    with pytest.raises(InjectionError, match=r"network_mode 'host'.*network\.\* faults on its links"):
        injector.resolve("matcher", Selection(all=True), ctx)


def test_down_removes_exactly_the_stack_containers(stack: Path) -> None:
    target = matcher_target(stack)
    ids = [m.container for m in target.containers]
    report = stop_stack(stack)
    assert [line for line in report if line.startswith("removed matcher")] == [
        f"removed matcher-{n} (container {str(ids[n - 1])[:12]})" for n in (1, 2)
    ]
    with engine(target.engine_url, 10) as client:
        assert client.find({containers.STACK_LABEL: target.labels[containers.STACK_LABEL]}) == []


def test_the_shipped_container_experiment_kills_a_real_container_under_load(docker_host: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    started = time.monotonic()
    command = ["chaos.py", "run", "experiments/container-matcher-kill.yaml", "--stack-up", "--runs-dir", str(runs)]
    result = subprocess.run(
        [sys.executable, *command, "--quiet"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
    assert time.monotonic() - started < 150
    (journal_path,) = runs.glob("*/journal.json")
    journal = load_journal(journal_path)
    (fault,) = journal.faults
    assert fault.kind == "container.kill" and fault.status == "rolled_back"
    (killed,) = fault.inject
    assert killed.ok and killed.detail["signal"] == "SIGKILL" and killed.detail["exit_code"] == 137
    (restarted,) = fault.rollback
    assert restarted.ok and restarted.detail["action"] == "started"
    assert restarted.detail["container_id"] == killed.detail["container_id"]
    assert fault.verify and all(v.ok for v in fault.verify)
    assert fault.recovery is not None and fault.recovery.recovered
    assert fault.recovery.rto_s is not None and 0 < fault.recovery.rto_s <= 15
    # The run's own stack was taken down, its containers with it.
    with engine(docker_host, 10) as client:
        assert all(c.id != killed.detail["container_id"] for c in client.find({containers.SERVICE_LABEL: "matcher"}))
