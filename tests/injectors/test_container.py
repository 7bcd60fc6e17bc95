"""Container faults against a real engine (podman's Docker API): real containers killed, stopped, frozen, restarted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.container_engine import ContainerEngineError
from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan, FaultSpec, Injector
from injectors.container.kill import ContainerKillInjector, ContainerKillSpec
from injectors.container.network_disconnect import ContainerNetworkDisconnectInjector, ContainerNetworkDisconnectSpec
from injectors.container.pause import ContainerPauseInjector, ContainerPauseSpec
from injectors.container.restart import ContainerRestartInjector, ContainerRestartSpec
from injectors.container.stop import ContainerStopInjector, ContainerStopSpec
from injectors.errors import FaultStillPresentError, InjectionError
from injectors.selection import Selection
from stackspec.targets import ContainerInstance, ContainerTarget, StackDescription
from tests.injectors.podman_engine import PodmanEngine, podman_engine
from tests.injectors.support import SERVICE, Web
from tests.support.helpers import ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.infra]


@pytest.fixture(scope="module")
def podman() -> Iterator[PodmanEngine]:
    with podman_engine() as engine:
        yield engine


@pytest.fixture
def web(podman: PodmanEngine, request: pytest.FixtureRequest) -> Iterator[Web]:
    web = Web(podman, {"chaos.test": podman.prefix, "chaos.case": request.node.name[:60]})
    yield web
    for container_id in web.ids.values():
        podman.client.api.remove_container(container_id, force=True)
        podman.containers.remove(container_id)


def plan_for(
    injector: Injector[FaultSpec], target: str, select: Selection, ctx: EngineContext, seed: int = 3
) -> FaultPlan:
    refs = injector.resolve(target, select, ctx)
    return FaultPlan(
        kind=injector.kind, target=target, params=injector.spec.model_dump(), select=select, seed=seed, targets=refs
    )


def test_kill_sends_the_signal_then_rollback_starts_the_container_again(web: Web) -> None:
    ctx = web.ctx()
    injector = ContainerKillInjector(ContainerKillSpec(signal="SIGTERM"))
    plan = plan_for(injector, "web", Selection(role="leader"), ctx)
    assert [t.id for t in plan.targets] == ["web-1"]
    assert plan.targets[0].detail["container_id"] == web.ids["web-1"]

    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    assert result.detail["exit_code"] == 3  # our TERM trap ran: it was SIGTERM that arrived
    assert web.state("web-1")["Running"] is False
    assert web.health("web-1") is not None
    with pytest.raises(FaultStillPresentError, match="not running"):
        injector.verify_one(plan.targets[0], plan, ctx)

    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok, undone.error
    assert undone.detail["action"] == "started"
    assert web.state("web-1")["Running"] is True and web.health("web-1") is None
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    (again,) = injector.rollback(plan, ctx)  # idempotent: nothing left to undo
    assert again.ok and again.detail["action"] == "none"


def test_stop_then_start(web: Web) -> None:
    ctx = web.ctx()
    injector = ContainerStopInjector(ContainerStopSpec(stop_timeout_s=5))
    plan = plan_for(injector, "web", Selection(name="web-2"), ctx)
    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    assert web.state("web-2")["Status"] == "exited"
    assert web.state("web-1")["Running"] is True  # only the chosen one
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["action"] == "started"
    assert injector.verify_gone(plan, ctx)[0].ok


def test_pause_freezes_the_container_and_verify_fails_until_it_is_unpaused(web: Web) -> None:
    ctx = web.ctx()
    injector = ContainerPauseInjector(ContainerPauseSpec())
    plan = plan_for(injector, "web", Selection(name="web-3"), ctx)
    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    state = web.state("web-3")
    assert state["Paused"] is True and state["Status"] == "paused"
    assert web.health("web-3") is not None  # frozen: the request times out
    (verified,) = injector.verify_gone(plan, ctx)
    assert not verified.ok and verified.error is not None and "paused" in verified.error

    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["action"] == "unpaused"
    assert web.state("web-3")["Paused"] is False and web.health("web-3") is None
    assert injector.verify_gone(plan, ctx)[0].ok


def test_restart_gives_the_container_a_new_start(web: Web) -> None:
    ctx = web.ctx()
    before = web.state("web-1")
    injector = ContainerRestartInjector(ContainerRestartSpec(stop_timeout_s=1))
    plan = plan_for(injector, "web", Selection(name="web-1"), ctx)
    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    after = web.state("web-1")
    assert after["StartedAt"] != before["StartedAt"] and after["Pid"] != before["Pid"]
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok, undone.error
    assert injector.verify_gone(plan, ctx)[0].ok


def test_label_selector_with_count_and_percent_is_repeatable_with_the_seed(web: Web) -> None:
    injector = ContainerPauseInjector(ContainerPauseSpec())
    picks = []
    for seed in (11, 11, 12, 13, 14):
        refs = injector.resolve("web-labelled", Selection(count=2), web.ctx(seed))
        assert len(refs) == 2 and {r.detail["container_id"] for r in refs} <= set(web.ids.values())
        picks.append(sorted(r.id for r in refs))
    assert picks[0] == picks[1]  # same seed, same choice
    assert len({tuple(p) for p in picks}) > 1  # the seed is what decides it
    (one,) = injector.resolve("web-labelled", Selection(percent=30), web.ctx(5))  # 30 % of 3 → 1
    assert one.detail["health"]["http"].endswith("/health")  # taken from the container's label
    everything = injector.resolve("web-labelled", Selection(all=True), web.ctx())
    assert sorted(r.detail["container_id"] for r in everything) == sorted(web.ids.values())
    leader = injector.resolve("web-labelled", Selection(role="leader"), web.ctx())
    assert [r.detail["container_id"] for r in leader] == [web.ids["web-1"]]


def test_rollback_works_from_the_plan_alone_in_a_new_process(web: Web, tmp_path: Path) -> None:
    ctx = web.ctx()
    injector = ContainerPauseInjector(ContainerPauseSpec())
    plan = plan_for(injector, "web", Selection(name="web-2"), ctx)
    assert injector.inject(plan, ctx)[0].ok
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.model_dump_json())
    # The new process knows nothing of the stack: an empty description, only the plan.
    script = (
        "import sys, json\n"
        "from engine.context import EngineContext\nfrom engine.events import EventBus\n"
        "from engine.stack import LiveStack\nfrom injectors.base import FaultPlan\n"
        "from injectors.registry import get_injector\nfrom stackspec.targets import StackDescription\n"
        "plan = FaultPlan.model_validate_json(open(sys.argv[1]).read())\n"
        "cls = get_injector(plan.kind)\ninj = cls(cls.parse_params(plan.params))\n"
        "ctx = EngineContext('recover', LiveStack(StackDescription(name='empty'), None), 0, EventBus())\n"
        "results = inj.rollback(plan, ctx) + inj.verify_gone(plan, ctx)\n"
        "print(json.dumps([r.model_dump(mode='json') for r in results]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(plan_file)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    rollback, verify = json.loads(done.stdout)
    assert rollback["ok"] and rollback["detail"]["action"] == "unpaused", rollback
    assert verify["ok"], verify
    assert web.state("web-2")["Paused"] is False


def test_the_engine_health_check_must_pass(podman: PodmanEngine) -> None:
    port = free_port()
    # Healthy while /tmp/ok exists; the service script creates it on every start.
    script = f"echo > /tmp/ok; {SERVICE % ('x', port)}"
    container = podman.run("hc", script, healthcheck=["/bin/test", "-f", "/tmp/ok"])
    target = ContainerTarget(engine_url=podman.url, containers=[ContainerInstance(name="hc", container=container)])
    ctx = EngineContext("t", LiveStack(StackDescription(name="t", targets={"hc": target}), None), 1, EventBus())
    injector = ContainerKillInjector(ContainerKillSpec())
    plan = plan_for(injector, "hc", Selection(), ctx)
    assert injector.inject(plan, ctx)[0].ok
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok, undone.error
    assert injector.verify_gone(plan, ctx)[0].ok
    assert podman.inspect(container)["State"]["Health"]["Status"] == "healthy"

    exec_id = podman.client.api.exec_create(container, ["/bin/rm", "/tmp/ok"])
    podman.client.api.exec_start(exec_id)
    (verified,) = injector.verify_gone(plan, ctx)
    assert not verified.ok and verified.error is not None and "unhealthy" in verified.error


def test_network_disconnect_is_refused_on_the_host_network(web: Web) -> None:
    injector = ContainerNetworkDisconnectInjector(ContainerNetworkDisconnectSpec())
    with pytest.raises(InjectionError, match="network_mode 'host'"):
        injector.resolve("web", Selection(name="web-1"), web.ctx())


def test_network_disconnect_and_reconnect_on_an_engine_network(podman: PodmanEngine) -> None:
    network = podman.network("net")
    container = podman.run("netted", "exec sleep 600", network=network)
    net_name = podman.client.api.inspect_network(network)["Name"]
    target = ContainerTarget(engine_url=podman.url, containers=[ContainerInstance(name="n", container=container)])
    ctx = EngineContext("t", LiveStack(StackDescription(name="t", targets={"n": target}), None), 1, EventBus())
    injector = ContainerNetworkDisconnectInjector(ContainerNetworkDisconnectSpec())
    plan = plan_for(injector, "n", Selection(), ctx)
    assert plan.targets[0].detail["networks"] == [net_name]

    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    assert net_name not in (podman.inspect(container)["NetworkSettings"]["Networks"] or {})
    with pytest.raises(FaultStillPresentError, match="disconnected"):
        injector.verify_one(plan.targets[0], plan, ctx)
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["reconnected"] == [net_name]
    assert net_name in podman.inspect(container)["NetworkSettings"]["Networks"]
    assert injector.verify_gone(plan, ctx)[0].ok


def test_resolve_refuses_a_container_that_is_not_running(web: Web) -> None:
    web.podman.client.api.stop(web.ids["web-2"], timeout=1)
    with pytest.raises(InjectionError, match=r"web-2 .*not running"):
        ContainerKillInjector(ContainerKillSpec()).resolve("web", Selection(name="web-2"), web.ctx())


def test_an_unreachable_engine_is_a_clear_error(tmp_path: Path) -> None:
    target = ContainerTarget(engine_url=f"unix://{tmp_path}/none.sock", timeout_s=1, labels={"a": "b"})
    ctx = EngineContext("t", LiveStack(StackDescription(name="t", targets={"c": target}), None), 1, EventBus())
    started = time.monotonic()
    with pytest.raises(InjectionError, match="DOCKER_HOST") as unreachable:
        ContainerKillInjector(ContainerKillSpec()).resolve("c", None, ctx)
    assert isinstance(unreachable.value.__cause__, ContainerEngineError)
    assert time.monotonic() - started < 10
