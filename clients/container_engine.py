"""The one adapter to a Docker Engine API (Docker, or podman's compatible service): typed state, our errors.

`docker` is imported only when a client is made, with an error that says how to install it. Every
client is made for one engine URL with a timeout on every call; no `docker.from_env()` global state.
Docker SDK errors are translated here, at the edge, into `ContainerEngineError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from clients.errors import ClientError, NotFoundError

DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
# Pinned rather than negotiated: saves a round trip per client; Docker and podman (v4) both serve it.
API_VERSION = "1.41"


class ContainerEngineError(ClientError):
    """The engine could not be reached, or refused a call."""


class ContainerNotFoundError(ContainerEngineError, NotFoundError):
    """No container has that name or id on the engine."""


@dataclass(frozen=True)
class ContainerState:
    """What a fault needs to know about one container, from one inspect call."""

    id: str
    name: str
    status: str  # created, running, paused, restarting, exited, dead
    running: bool
    paused: bool
    pid: int
    started_at: str
    exit_code: int
    health: str | None  # None without a health check, else starting / healthy / unhealthy
    network_mode: str
    networks: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        """Running and not frozen."""
        return self.running and not self.paused


def engine_url(explicit: str | None) -> str:
    """The engine to talk to: the target's `engine_url`, else $DOCKER_HOST, else Docker's default socket."""
    return explicit or os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE_URL


def state_of(attrs: Mapping[str, Any]) -> ContainerState:
    """A ContainerState from the JSON of GET /containers/{id}/json."""
    state = attrs.get("State") or {}
    health = state.get("Health") or None
    host = attrs.get("HostConfig") or {}
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    return ContainerState(
        id=str(attrs["Id"]),
        name=str(attrs.get("Name", "")).lstrip("/"),
        status=str(state.get("Status", "unknown")),
        running=bool(state.get("Running")),
        paused=bool(state.get("Paused")),
        pid=int(state.get("Pid") or 0),
        started_at=str(state.get("StartedAt", "")),
        exit_code=int(state.get("ExitCode") or 0),
        health=str(health["Status"]) if isinstance(health, dict) and health.get("Status") else None,
        network_mode=str(host.get("NetworkMode", "")),
        networks=tuple(sorted(networks)),
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
    )


class EngineClient:
    """Calls on one engine; every method raises ContainerEngineError (or ContainerNotFoundError)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        try:
            import docker  # optional dependency: loaded only when a container fault runs
        except ImportError as exc:
            raise ContainerEngineError(
                "container faults need the `docker` package: pip install -e '.[containers]'"
            ) from exc
        self.url = url
        self.timeout_s = timeout_s
        self._errors = docker.errors
        with self._translated(f"connect to {url}"):
            self._api = docker.APIClient(base_url=url, version=API_VERSION, timeout=timeout_s)

    def close(self) -> None:
        self._api.close()

    @contextmanager
    def _translated(self, what: str, ref: str | None = None) -> Iterator[None]:
        import requests  # comes with docker

        try:
            yield
        except self._errors.NotFound as exc:
            raise ContainerNotFoundError(f"no container {ref!r} on the engine at {self.url}") from exc
        except self._errors.APIError as exc:
            raise ContainerEngineError(f"{what}: the engine at {self.url} refused: {exc.explanation or exc}") from exc
        except (requests.exceptions.RequestException, self._errors.DockerException, OSError) as exc:
            raise ContainerEngineError(
                f"{what}: no answer from the container engine at {self.url} ({type(exc).__name__}: {exc}); "
                "is it running? set DOCKER_HOST or the target's `engine_url` (podman: bash scripts/podman-setup.sh)"
            ) from exc

    def ping(self) -> None:
        with self._translated("ping"):
            self._api.ping()

    def inspect(self, ref: str) -> ContainerState:
        with self._translated(f"inspect {ref}", ref):
            return state_of(self._api.inspect_container(ref))

    def find(self, labels: Mapping[str, str]) -> list[ContainerState]:
        """Every container (running or not) carrying all `labels`, sorted by name."""
        wanted = [f"{key}={value}" for key, value in sorted(labels.items())]
        with self._translated(f"list containers with labels {', '.join(wanted)}"):
            found = self._api.containers(all=True, filters={"label": wanted})
        states = [self.inspect(str(entry["Id"])) for entry in found]
        return sorted(states, key=lambda s: s.name)

    def kill(self, ref: str, signal: str) -> None:
        with self._translated(f"kill {ref} with {signal}", ref):
            self._api.kill(ref, signal=signal)

    def stop(self, ref: str, timeout_s: float) -> None:
        with self._translated(f"stop {ref}", ref):
            self._api.stop(ref, timeout=max(0, round(timeout_s)))

    def start(self, ref: str) -> None:
        with self._translated(f"start {ref}", ref):
            self._api.start(ref)

    def restart(self, ref: str, timeout_s: float) -> None:
        with self._translated(f"restart {ref}", ref):
            self._api.restart(ref, timeout=max(0, round(timeout_s)))

    def pause(self, ref: str) -> None:
        with self._translated(f"pause {ref}", ref):
            self._api.pause(ref)

    def unpause(self, ref: str) -> None:
        with self._translated(f"unpause {ref}", ref):
            self._api.unpause(ref)

    def disconnect(self, ref: str, network: str) -> None:
        with self._translated(f"disconnect {ref} from network {network}", ref):
            self._api.disconnect_container_from_network(ref, network)

    def connect(self, ref: str, network: str) -> None:
        with self._translated(f"connect {ref} to network {network}", ref):
            self._api.connect_container_to_network(ref, network)

    def run_healthcheck(self, ref: str) -> str | None:
        """Run the container's health check now, where the engine can: podman without systemd has no timer
        that runs health checks, but its libpod API runs one on request. None where that API is absent."""
        with self._translated(f"run the health check of {ref}", ref):
            response = self._api.get(self._api.base_url + f"/v4.0.0/libpod/containers/{ref}/healthcheck")
        if response.status_code != 200:
            return None
        try:
            return str(response.json().get("Status")) or None
        except ValueError:
            return None

    # Used by the reference stack's containers profile to run its services as containers.

    def import_image(self, rootfs_tar: bytes, repository: str, changes: list[str]) -> str:
        """Import a root filesystem tarball as an image (no registry); returns the image reference."""
        with self._translated(f"import image {repository}"):
            self._api.import_image_from_data(rootfs_tar, repository=repository, changes=changes)
        return repository

    def image_exists(self, reference: str) -> bool:
        with self._translated(f"inspect image {reference}"):
            try:
                self._api.inspect_image(reference)
            except self._errors.ImageNotFound:
                return False
        return True

    def create(
        self,
        image: str,
        command: list[str],
        *,
        name: str,
        labels: Mapping[str, str],
        binds: list[str],
        environment: Mapping[str, str],
        working_dir: str | None,
    ) -> str:
        """Create (not start) a container on the host network with `src:dst:ro|rw` binds; returns its id."""
        with self._translated(f"create container {name}"):
            host_config = self._api.create_host_config(network_mode="host", binds=binds)
            created = self._api.create_container(
                image,
                command=command,
                name=name,
                labels=dict(labels),
                environment=dict(environment),
                working_dir=working_dir,
                host_config=host_config,
            )
        return str(created["Id"])

    def remove(self, ref: str) -> None:
        """Remove a container, killing it first if it runs; a container already gone is fine."""
        try:
            with self._translated(f"remove {ref}", ref):
                self._api.remove_container(ref, force=True)
        except ContainerNotFoundError:
            pass


@contextmanager
def engine(url: str | None, timeout_s: float) -> Iterator[EngineClient]:
    """A client for one engine (`url` or $DOCKER_HOST), closed afterwards."""
    client = EngineClient(engine_url(url), timeout_s)
    try:
        yield client
    finally:
        client.close()
