"""The hosts profile for real: eight namespace hosts on a bridge, each node started and reached over SSH,
the three hosts experiments through `chaos.py run`, and a `down` that leaves nothing behind."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.ssh import SshSession
from engine.journal import load_journal
from stackspec.targets import ProcessTarget, SshHost
from tests.support.helpers import ROOT, chaos
from tradingstack.describe import describe
from tradingstack.hosts import RECORD, SSHD, HostsError, Network, create
from tradingstack.hosts_launch import HOST_NAMES, lay_out
from tradingstack.state import read_state

CLI_TIMEOUT_S = 150  # a hosts-profile start or run here, with room for a loaded 2-core machine


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=True).stdout


def require_hosts() -> None:
    """Skip (fail under CI=true, where setup must have installed them) without root, iproute2 or sshd."""
    if os.geteuid() != 0 or shutil.which("ip") is None or not Path(SSHD).is_file():
        reason = "the hosts profile needs root, iproute2 and openssh-server (bash scripts/setup.sh test)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def netns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require_hosts()
    directory = tmp_path_factory.mktemp("hosts")
    try:
        started = time.monotonic()
        up = chaos("stack", "up", "--profile", "hosts", "--dir", str(directory), timeout=CLI_TIMEOUT_S)
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"\nhosts stack up in {time.monotonic() - started:.1f} s")
        yield directory
    finally:
        chaos("stack", "down", "--dir", str(directory), timeout=CLI_TIMEOUT_S)


def network(directory: Path) -> Network:
    found = Network.load(directory / "hosts")
    assert found is not None
    return found


def test_the_description_holds_every_node_as_laid_out_each_on_its_host(tmp_path: Path) -> None:
    address = {name: f"10.200.0.{10 + n}" for n, name in enumerate(HOST_NAMES)}
    described = describe("hosts")
    assert list(described.targets) == ["redis", "sentinel", "zookeeper", "matcher", "gateway"]
    assert described.toxiproxy is None and sorted(described.endpoints) == ["gateway", "redis", "zookeeper"]
    ssh = {name: SshHost(address=a, user="root") for name, a in address.items()}
    layout = lay_out(tmp_path, address, ssh, 2.0)
    for target, _, instances in layout.middleware + layout.services:
        group = described.targets[target]
        assert isinstance(group, ProcessTarget) and [i.name for i in group.instances] == [i.name for i in instances]
        for instance in instances:
            assert instance.host is not None and instance.host.address in " ".join(
                [*instance.argv, str(instance.health)]
            )
    assert layout.description.endpoints["gateway"] == f"http://{address['gateway-1']}:8080"


def test_a_host_that_cannot_be_made_leaves_nothing_behind(tmp_path: Path) -> None:
    require_hosts()

    def ours() -> set[str]:  # what a hosts stack names: ch<token>-<host>, chb/chv/chp<token>
        words = (ip("netns", "list") + ip("-o", "link")).replace(":", " ").replace("@", " ").split()
        return {word for word in words if word.startswith("ch")}

    before = ours()
    with pytest.raises(HostsError, match="b/c"):
        create(tmp_path, ["a", "b/c"])  # the first host is made, with its sshd; `ip netns add b/c` fails
    assert ours() <= before
    assert not (tmp_path / "hosts" / RECORD).exists()


@pytest.mark.infra
@pytest.mark.slow
def test_every_node_runs_on_its_own_isolated_host_reached_over_ssh(stack: Path) -> None:
    net = network(stack)
    assert [h.name for h in net.hosts] == list(HOST_NAMES)
    subnet = ipaddress.ip_network(net.subnet)
    # Of that /24, the runner's namespace holds only the bridge's address; nothing routes off the machine.
    root_addresses = [a for a in ip("-4", "-o", "addr").split() if a.startswith(str(subnet.network_address)[:-1])]
    assert root_addresses == [f"{net.bridge_address}/24"]
    for host in net.hosts:
        assert "default" not in ip("-n", host.netns, "route"), host.name
        inside = ip("-n", host.netns, "-4", "-o", "addr")
        assert f"{host.address}/24" in inside and "127.0.0.1/8" in inside and inside.count("inet ") == 2
        with SshSession(net.ssh(host.name)) as session:
            code, out, _ = session.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        assert code == 0 and f"{host.address}/24" in out
    state = read_state(stack)
    assert state is not None and state.toxiproxy is None
    again = chaos("stack", "up", "--profile", "hosts", "--dir", str(stack), timeout=CLI_TIMEOUT_S)
    assert again.returncode == 1 and "already" in again.stderr, again.stdout + again.stderr
    on_host = {"sentinel-1": "zookeeper-1", "sentinel-2": "zookeeper-2", "sentinel-3": "zookeeper-3"}
    for target in state.targets.values():
        assert isinstance(target, ProcessTarget)
        for instance in target.instances:
            host = net.host(on_host.get(instance.name, instance.name))
            assert instance.host is not None and instance.host.address == host.address
            assert instance.pid is not None and host.sshd_pid is not None
            # Started over SSH on that host: in its network namespace, on its address.
            assert netns_of(instance.pid) == netns_of(host.sshd_pid), instance.name
            assert instance.health is not None and host.address in instance.health.model_dump_json()


def shortened(name: str) -> str:
    """A hosts experiment with a shorter timeline and lighter load, as tests/test_end_to_end.py shortens."""
    text = (ROOT / "experiments" / name).read_text()
    changes = [
        ("duration: 30s", "duration: 24s"),
        ("at: 10s", "at: 8s"),
        ("duration: 10s", "duration: 8s"),
        ("users: 20", "users: 12"),
        ("locustfile: ../loadgen/trading.py", f"locustfile: {ROOT / 'loadgen' / 'trading.py'}"),
    ]
    for old, new in changes:
        assert old in text, f"{name} no longer contains {old!r}"
        text = text.replace(old, new, 1)
    return text


@pytest.mark.infra
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("hosts-matcher-leader-partition.yaml", "host.partition"),
        ("hosts-gateway-matcher-loss.yaml", "host.packet_loss"),
        ("hosts-redis-primary-kill.yaml", "redis.kill_primary"),
    ],
)
def test_the_hosts_experiments_pass_with_every_fault_verified_gone(
    stack: Path, tmp_path: Path, name: str, kind: str
) -> None:
    experiment = tmp_path / name
    experiment.write_text(shortened(name))
    runs = tmp_path / "runs"
    result = chaos("run", str(experiment), "--stack-dir", str(stack), "--runs-dir", str(runs), timeout=CLI_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    (journal_path,) = runs.glob("*/journal.json")
    (fault,) = load_journal(journal_path).faults
    assert fault.kind == kind and fault.status == "rolled_back"
    assert fault.inject and all(step.ok for step in fault.inject)
    assert fault.verify and all(step.ok for step in fault.verify)
    # Every step went to a host over SSH: its address is one of the stack's hosts.
    addresses = {h.address for h in network(stack).hosts}
    for step in [*fault.inject, *fault.rollback, *fault.verify]:
        where = str(step.detail.get("host", ""))
        assert any(f"@{a}:22" in where for a in addresses), step
    assert fault.recovery is not None and fault.recovery.recovered
    if kind == "redis.kill_primary":
        (rollback,) = fault.rollback
        assert rollback.measured["promoted_after_s"] > 0


@pytest.mark.infra
@pytest.mark.slow
def test_down_leaves_no_namespace_bridge_veth_sshd_or_node(stack: Path) -> None:
    net = network(stack)
    state = read_state(stack)
    assert state is not None
    pids = [i.pid for t in state.targets.values() if isinstance(t, ProcessTarget) for i in t.instances]
    pids += [h.sshd_pid for h in net.hosts]
    down = chaos("stack", "down", "--dir", str(stack), timeout=CLI_TIMEOUT_S)
    assert down.returncode == 0, down.stdout + down.stderr
    namespaces = ip("netns", "list")
    assert not any(h.netns in namespaces for h in net.hosts)
    links = ip("-o", "link")
    assert net.bridge not in links and f"chv{net.token}" not in links and f"chp{net.token}" not in links
    assert net.subnet.rpartition(".")[0] not in ip("-4", "-o", "addr")
    for pid in pids:
        assert pid is not None
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] == "Z", pid
    assert not (stack / "hosts" / RECORD).exists() and read_state(stack) is None
    again = chaos("stack", "down", "--dir", str(stack), timeout=CLI_TIMEOUT_S).stdout
    assert "nothing to stop" in again
