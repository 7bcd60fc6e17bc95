"""A real container engine for tests: podman's Docker-compatible API, started by scripts/podman-setup.sh.

Tests get the engine URL, a busybox image imported from a rootfs tarball (nothing is pulled), and a
tracker that removes every container and network they created, by id. Without root or apt-get the
tests skip — except under CI=true, where a missing engine is a failure.
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "podman-setup.sh"
BUSYBOX = Path("/bin/busybox")
IMAGE = "localhost/chaos-test-busybox"
APPLETS = ("sh", "sleep", "httpd", "cat", "echo", "true", "test", "rm")


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@functools.lru_cache(maxsize=1)
def _start() -> tuple[str | None, str]:
    """(DOCKER_HOST, "") once the engine answers, else (None, why). Run once per test session."""
    try:
        done = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"scripts/podman-setup.sh failed: {exc}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("DOCKER_HOST=")]
    if done.returncode == 0 and lines:
        return lines[-1].split("=", 1)[1], ""
    # The whole of what the script said (it ends with the service's log), not just its last line.
    said = "\n".join(done.stderr.strip().splitlines()[-40:]) or f"exit code {done.returncode}"
    return None, f"no container engine here: scripts/podman-setup.sh exited {done.returncode}:\n{said}"


def engine_url() -> str:
    """The engine's DOCKER_HOST URL; skips (fails under CI) when it cannot be set up here."""
    url, reason = _start()
    if url is None:
        _unavailable(reason)
        raise AssertionError("unreachable")
    return url


def busybox_rootfs() -> bytes:
    """A root filesystem tarball: the static busybox and links for the applets the tests use."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for directory in ("tmp", "www", "etc", "proc", "sys", "dev"):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(entry)
    return buffer.getvalue()


@dataclass
class PodmanEngine:
    """The engine plus everything a test module created on it (removed by id at the end)."""

    url: str
    client: Any  # docker.DockerClient
    image: str
    prefix: str = field(default_factory=lambda: f"chaos-test-{uuid.uuid4().hex[:8]}")
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    def run(
        self,
        name: str,
        script: str,
        labels: Mapping[str, str] | None = None,
        healthcheck: list[str] | None = None,
        network: str | None = None,
    ) -> str:
        """Start `sh -c script` in a busybox container (host network unless `network`); returns its id."""
        options: dict[str, Any] = {"network": network} if network else {"network_mode": "host"}
        if healthcheck is not None:
            # The interval is long: podman has no timer here; the injector runs the check on demand.
            options["healthcheck"] = {"test": ["CMD", *healthcheck], "interval": 3_600_000_000_000, "retries": 1}
        container = self.client.containers.run(
            self.image,
            ["/bin/sh", "-c", script],
            name=f"{self.prefix}-{name}",
            labels=dict(labels or {}),
            detach=True,
            **options,
        )
        self.containers.append(container.id)
        return str(container.id)

    def network(self, name: str) -> str:
        created = self.client.networks.create(f"{self.prefix}-{name}", driver="bridge")
        self.networks.append(created.id)
        return str(created.id)

    def inspect(self, container_id: str) -> dict[str, Any]:
        return dict(self.client.api.inspect_container(container_id))

    def cleanup(self) -> None:
        for container_id in self.containers:
            try:
                self.client.api.remove_container(container_id, force=True)
            except Exception as exc:  # already gone is fine; anything else is reported, not hidden
                if "no such container" not in str(exc).lower() and "404" not in str(exc):
                    raise
        for network_id in self.networks:
            self.client.api.remove_network(network_id)
        self.containers.clear()
        self.networks.clear()


@contextmanager
def podman_engine() -> Iterator[PodmanEngine]:
    """The engine for a test module: yields it, then removes what the tests created."""
    import docker

    url = engine_url()
    client = docker.DockerClient(base_url=url, version="1.41", timeout=60)
    if not any(IMAGE in tag for image in client.images.list() for tag in image.tags):
        client.api.import_image_from_data(busybox_rootfs(), repository=IMAGE, changes=['CMD ["/bin/sh"]'])
    engine = PodmanEngine(url=url, client=client, image=IMAGE)
    try:
        yield engine
    finally:
        engine.cleanup()
        client.close()
