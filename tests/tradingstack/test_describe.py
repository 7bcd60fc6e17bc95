"""`python -m tradingstack describe`: the description `up` would write, for the engine to check experiments against."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.stack import reference_endpoints, reference_targets
from stackspec.targets import ContainerTarget, ProcessTarget, StackDescription
from tests.tradingstack.support import shape
from tradingstack import topology
from tradingstack.describe import describe
from tradingstack.processes import REPO_ROOT

PROFILES = list(topology.PROFILES)


def cli_describe(profile: str, env: dict[str, str] | None = None) -> StackDescription:
    command = [sys.executable, "-m", "tradingstack", "describe", "--profile", profile]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True, env=env)
    return StackDescription.model_validate_json(result.stdout)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_command_prints_the_description_describe_builds(profile: str) -> None:
    printed = cli_describe(profile)
    assert (printed.name, printed.profile, printed.trading) == ("reference", profile, True)
    assert shape(printed) == shape(describe(profile))


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "hosts"])  # hosts: test_hosts_profile.py
def test_it_holds_every_target_the_topology_lays_out(profile: str, tmp_path: Path) -> None:
    """Links as laid out, then the processes in the order the launcher starts them, and the same endpoints."""
    layout = topology.lay_out(tmp_path, profile, 2, {}, 2.0)
    described = describe(profile)
    links = [name for name, target in layout.description.targets.items()]
    middleware = [target for target, _, _ in layout.middleware]
    assert list(described.targets) == [*links, *middleware, "toxiproxy", "matcher", "gateway"]
    for target, _, instances in layout.middleware:
        group = described.targets[target]
        assert isinstance(group, ProcessTarget) and [i.name for i in group.instances] == [i.name for i in instances]
    matcher = described.targets["matcher"]
    assert isinstance(matcher, ContainerTarget if profile == "containers" else ProcessTarget)
    assert sorted(described.endpoints) == sorted(layout.description.endpoints) == ["gateway", "redis", "zookeeper"]


def test_the_reference_stack_declares_its_audit(tmp_path: Path) -> None:
    layout = topology.lay_out(tmp_path, "basic", 2, {}, 2.0)
    audit = layout.description.audit
    assert audit is not None
    assert audit.argv == [sys.executable, "-m", "tradingstack", "audit", "--dir", str(tmp_path)]
    assert audit.cwd == str(REPO_ROOT) and audit.env == {"PYTHONPATH": str(REPO_ROOT)}


def test_it_needs_neither_redis_nor_java_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Experiments are validated on machines that run no stack: the programs are only named there."""
    printed = cli_describe("ha", {**os.environ, "PATH": str(tmp_path)})  # nothing on it
    redis = printed.targets["redis"]
    assert isinstance(redis, ProcessTarget) and redis.instances[0].argv[0] == "redis-server"
    zookeeper = printed.targets["zookeeper"]
    assert isinstance(zookeeper, ProcessTarget) and zookeeper.instances[0].argv[0] == "java"
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(topology.TopologyError, match="redis-server not found on PATH"):
        topology.lay_out(tmp_path / "start", "basic", 2, {}, 2.0)  # a start does need them


def test_it_writes_nothing_where_it_runs(tmp_path: Path) -> None:
    before = sorted(Path.cwd().iterdir())
    describe("ha")
    assert sorted(Path.cwd().iterdir()) == before


def test_an_unknown_profile_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tradingstack", "describe", "--profile", "nope"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "invalid choice: 'nope'" in result.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_the_engine_reads_the_reference_topology_from_the_command(profile: str) -> None:
    """engine.stack asks `describe` (it imports nothing of the stack): the same names and kinds."""
    described = describe(profile)
    assert reference_targets(profile) == {name: t.kind for name, t in described.targets.items()}
    assert reference_endpoints(profile) == set(described.endpoints)


def test_the_kinds_are_those_experiments_rely_on() -> None:
    assert reference_targets("containers")["matcher"] == "container"
    assert reference_targets("basic")["matcher->redis"] == "link"
    assert "sentinel" in reference_targets("ha") and "matcher->redis" not in reference_targets("ha")
    assert reference_targets("lossy") == reference_targets("basic")
