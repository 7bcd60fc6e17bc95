"""What the container and Kubernetes tests share with the fault matrix: a container target of web services
on the podman engine, and the kubernetes targets of the fake cluster."""

from __future__ import annotations

from typing import Any

from clients.health import problem, wait_healthy
from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from stackspec.targets import (
    ContainerInstance,
    ContainerTarget,
    HttpHealth,
    KubernetesAccess,
    KubernetesTarget,
    StackDescription,
)
from tests.injectors.podman_engine import PodmanEngine
from tests.support.helpers import free_port

# A web service in a container: /health answers, /status reports a role; SIGTERM ends it with exit code 3.
SERVICE = (
    "echo ok > /www/health; echo '{\"role\": \"%s\"}' > /www/status; trap 'exit 3' TERM; "
    "httpd -f -p 127.0.0.1:%d -h /www & wait"
)


class Web:
    """Three service containers (one leader) as a `container` target of a stack description."""

    def __init__(self, podman: PodmanEngine, labels: dict[str, str]) -> None:
        self.podman = podman
        self.ports: dict[str, int] = {}
        self.ids: dict[str, str] = {}
        instances = []
        for n, role in enumerate(["leader", "follower", "follower"], start=1):
            name, port = f"web-{n}", free_port()
            self.ports[name] = port
            url = f"http://127.0.0.1:{port}"
            self.ids[name] = podman.run(
                name,
                SERVICE % (role, port),
                labels={**labels, "chaos.health_url": f"{url}/health", "chaos.role_url": f"{url}/status"},
            )
            health = HttpHealth(http=f"{url}/health", timeout_s=0.5)
            instances.append(
                ContainerInstance(
                    name=name, container=f"{podman.prefix}-{name}", health=health, role_url=f"{url}/status"
                )
            )
            wait_healthy(health, 10)
        self.listed = ContainerTarget(engine_url=podman.url, containers=instances)
        self.by_label = ContainerTarget(engine_url=podman.url, labels=labels)

    def ctx(self, seed: int = 3) -> EngineContext:
        desc = StackDescription(name="test", targets={"web": self.listed, "web-labelled": self.by_label})
        return EngineContext("test", LiveStack(desc, None), seed=seed, bus=EventBus())

    def state(self, name: str) -> dict[str, object]:
        return dict(self.podman.inspect(self.ids[name])["State"])

    def health(self, name: str) -> str | None:
        return problem(HttpHealth(http=f"http://127.0.0.1:{self.ports[name]}/health", timeout_s=0.5))


NS = "shop"  # the fake cluster's namespace


def targets_for(url: str, **access: Any) -> dict[str, KubernetesTarget]:
    api = KubernetesAccess(api_url=url, timeout_s=2.0, **access)
    return {
        "web-pods": KubernetesTarget(
            api=api, resource="pods", namespace=NS, label_selector="app=web", deployment="web"
        ),
        "front-pods": KubernetesTarget(api=api, resource="pods", namespace=NS, label_selector="tier in (front)"),
        "web": KubernetesTarget(api=api, resource="deployment", namespace=NS, deployment="web"),
        "missing": KubernetesTarget(api=api, resource="deployment", namespace=NS, deployment="nope"),
        "workers": KubernetesTarget(api=api, resource="nodes", label_selector="pool=workers"),
    }
