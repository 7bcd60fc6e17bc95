"""The fault matrix's container kinds: their scenarios on containers of the podman engine, checked through its API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from injectors.base import FaultPlan
from stackspec.targets import ContainerInstance, ContainerTarget, HttpHealth
from tests.faultmatrix.checks import Check, Live, http_get
from tests.faultmatrix.kinds import Scenario


@contextmanager
def docker_client(url: str | None) -> Iterator[Any]:
    import docker

    assert url is not None, "the container target names no engine_url"
    client = docker.DockerClient(base_url=url, version="1.41", timeout=10)
    try:
        yield client
    finally:
        client.close()


def containers(live: Live, plan: FaultPlan) -> list[tuple[ContainerInstance, dict[str, Any], dict[str, Any]]]:
    """(instance, ref detail, inspect JSON) of every planned container, inspected by the name the stack gives."""
    group = live.state.targets[plan.target]
    assert isinstance(group, ContainerTarget), f"{plan.target} is not a container target"
    found = []
    with docker_client(group.engine_url) as client:
        for ref in plan.targets:
            instance = next(i for i in group.containers if i.name == ref.id)
            attrs = client.api.inspect_container(instance.container or instance.name)
            found.append((instance, ref.detail, dict(attrs)))
    return found


def containers_up(live: Live, plan: FaultPlan) -> None:
    """Each planned container is the same one (same id), running, not paused, on every network it was on,
    and its service answers its health URL."""
    for instance, detail, attrs in containers(live, plan):
        state, name = attrs["State"], instance.name
        was, now = detail["container_id"], attrs["Id"]
        assert now == was, f"{name} is another container: {was[:12]} → {now[:12]}"
        assert state["Running"] is True and state["Status"] == "running", f"{name} is {state['Status']}"
        assert state["Paused"] is False, f"{name} is paused"
        networks = set((attrs.get("NetworkSettings") or {}).get("Networks") or {})
        assert set(detail["networks"]) <= networks, f"{name} is on {sorted(networks)}, was on {detail['networks']}"
        if isinstance(instance.health, HttpHealth):
            http_get(instance.health.http)


def containers_down(live: Live, plan: FaultPlan) -> None:
    """Killed or stopped: not running, its service does not answer."""
    for instance, _, attrs in containers(live, plan):
        assert attrs["State"]["Running"] is False, f"{instance.name} is still {attrs['State']['Status']}"
        if isinstance(instance.health, HttpHealth):
            with_answer = None
            with suppress(AssertionError):
                with_answer = http_get(instance.health.http, timeout_s=0.5)
            assert with_answer is None, f"{instance.name} still answers {instance.health.http}"


def containers_paused(live: Live, plan: FaultPlan) -> None:
    for instance, _, attrs in containers(live, plan):
        assert attrs["State"]["Paused"] is True, f"{instance.name} is not paused ({attrs['State']['Status']})"


def containers_restarted(live: Live, plan: FaultPlan) -> None:
    """A new start: another start time and main PID than at resolution."""
    for instance, detail, attrs in containers(live, plan):
        before, state = detail["previous"], attrs["State"]
        assert state["StartedAt"] != before["started_at"], f"{instance.name} still started at {before['started_at']}"
        assert state["Pid"] != before["pid"], f"{instance.name} still has main pid {before['pid']}"


def containers_disconnected(live: Live, plan: FaultPlan) -> None:
    for instance, detail, attrs in containers(live, plan):
        networks = set((attrs.get("NetworkSettings") or {}).get("Networks") or {})
        assert not networks & set(detail["networks"]), f"{instance.name} is still on {sorted(networks)}"


def container(gone: Check, present: Check, target: str = "web", **fields: Any) -> Scenario:
    return Scenario(target, gone, present, stack="containers", **fields)


SCENARIOS: dict[str, Scenario] = {
    "container.kill": container(containers_up, containers_down, select={"name": "web-1"}),
    "container.stop": container(containers_up, containers_down, params={"stop_timeout_s": 2}, select={"name": "web-2"}),
    "container.pause": container(containers_up, containers_paused, select={"name": "web-3"}),
    "container.restart": container(
        containers_up, containers_restarted, params={"stop_timeout_s": 1}, select={"name": "web-1"}
    ),
    "container.network_disconnect": container(containers_up, containers_disconnected, target="netted"),
}
