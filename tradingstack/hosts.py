"""Hosts for the `hosts` profile: network namespaces on one Linux bridge, each with its own address and sshd.

Every host is a network namespace `ch<token>-<name>` whose only interface (besides `lo`) is `eth0`, one
end of a veth pair whose other end is on the bridge `chb<token>`. The addresses are in a 10.x.y.0/24 that
no interface of this machine has an address in, and no namespace has a default route, so nothing they
send leaves the machine. The bridge itself holds the first address of the /24: that is how the runner
(the root namespace) reaches the hosts. Each host runs its own sshd (Debian openssh-server) on its
address, port 22, with its own host key; the stack's key pair logs in as the current user, and
known_hosts names every host key. What was made is written to DIR/hosts/hosts.json step by step, so
`destroy` removes exactly that, even after a crash.
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clients.procs import alive_start, read_stat
from stackspec.targets import SshHost

SSHD = "/usr/sbin/sshd"  # by its absolute path: sshd re-executes itself
RECORD = "hosts.json"
FIRST_HOST = 10  # host N of a network gets .(FIRST_HOST + N); .1 is the bridge
MAX_HOSTS = 200
COMMAND_TIMEOUT_S = 30.0
SSH_TIMEOUT_S = 10.0


class HostsError(Exception):
    """The hosts could not be made (not root, no `ip`, no sshd, no free /24) or one of them failed to start."""


@dataclass
class Host:
    """One namespace host: its name, namespace, address, veth (bridge side) and sshd."""

    name: str
    netns: str
    address: str
    veth: str
    sshd_pid: int | None = None
    sshd_start: int | None = None


@dataclass
class Network:
    """Everything made for one stack's hosts, as DIR/hosts/hosts.json records it."""

    directory: str
    token: str
    bridge: str
    subnet: str
    bridge_address: str
    hosts: list[Host] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return Path(self.directory)

    @property
    def key(self) -> Path:
        return self.home / "key"

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def ssh(self, name: str) -> SshHost:
        """How the framework logs in on host `name`: key-based, its host key in known_hosts."""
        return SshHost(
            address=self.host(name).address,
            user=getpass.getuser(),
            key_file=str(self.key),
            known_hosts=str(self.known_hosts),
            connect_timeout_s=SSH_TIMEOUT_S,
            command_timeout_s=SSH_TIMEOUT_S,
        )

    def save(self) -> None:
        path = self.home / RECORD
        temp = path.with_name(f".{RECORD}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        os.replace(temp, path)

    @classmethod
    def load(cls, home: Path) -> Network | None:
        path = home / RECORD
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        hosts = [Host(**h) for h in data.pop("hosts")]
        return cls(**data, hosts=hosts)


def require_privileges() -> None:
    """Root, `ip` and sshd are needed; HostsError says which is missing."""
    if os.geteuid() != 0:
        raise HostsError("the hosts profile makes network namespaces and a bridge: it needs root")
    if shutil.which("ip") is None:
        raise HostsError("the hosts profile needs `ip` (iproute2): apt-get install iproute2")
    if not Path(SSHD).is_file() or shutil.which("ssh-keygen") is None:
        raise HostsError("the hosts profile needs OpenSSH's sshd and ssh-keygen: apt-get install openssh-server")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; HostsError with its stderr when it fails and `check`."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    if check and result.returncode != 0:
        raise HostsError(f"`ip {' '.join(args)}` failed: {result.stderr.strip() or result.returncode}")
    return result


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network an interface of the root namespace has an address in, and every routed one."""
    used = []
    for entry in json.loads(ip("-j", "-4", "addr").stdout or "[]"):
        for info in entry.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for route in json.loads(ip("-j", "-4", "route").stdout or "[]"):
        if route.get("dst", "default") != "default":
            used.append(ipaddress.IPv4Network(route["dst"] if "/" in route["dst"] else f"{route['dst']}/32"))
    return used


def free_subnet() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 (x in 200-250) that overlaps no address or route of this machine, picked at random."""
    used = _networks_in_use()
    candidates = [ipaddress.IPv4Network(f"10.{x}.{y}.0/24") for x in range(200, 251) for y in range(256)]
    random.shuffle(candidates)
    for net in candidates:
        if not any(net.overlaps(other) for other in used):
            return net
    raise HostsError("no free 10.200-250.x.0/24 on this machine")


def _keygen(path: Path, comment: str) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    return Path(f"{path}.pub").read_text().strip()


def _sshd_config(network: Network, host: Host) -> Path:
    home = network.home / host.name
    home.mkdir(parents=True, exist_ok=True)
    config = home / "sshd_config"
    lines = [
        f"ListenAddress {host.address}",
        "Port 22",
        f"HostKey {home / 'host_ed25519'}",
        f"AuthorizedKeysFile {network.home / 'authorized_keys'}",
        f"PidFile {home / 'sshd.pid'}",
        f"AllowUsers {getpass.getuser()}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        "MaxStartups 100:30:200",  # a fan-out logs in on many channels at once
        "LogLevel INFO",
        "",
    ]
    config.write_text("\n".join(lines))
    return config


def _make_host(network: Network, host: Host, index: int) -> None:
    """The namespace, its veth on the bridge, its address and `lo`: and no route but its own /24."""
    peer = f"chp{network.token}{index}"
    ip("netns", "add", host.netns)
    ip("link", "add", host.veth, "type", "veth", "peer", "name", peer)
    ip("link", "set", peer, "netns", host.netns)
    ip("link", "set", host.veth, "master", network.bridge, "up")
    ip("-n", host.netns, "link", "set", peer, "name", "eth0")
    ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
    ip("-n", host.netns, "link", "set", "eth0", "up")
    ip("-n", host.netns, "link", "set", "lo", "up")


def _start_sshd(network: Network, host: Host) -> None:
    config = _sshd_config(network, host)
    public = _keygen(network.home / host.name / "host_ed25519", f"chaos-{host.name}")
    with open(network.known_hosts, "a") as known:
        known.write(f"{host.address} {public}\n")
    with open(network.home / host.name / "sshd.log", "ab") as log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `up`, which exits once the stack runs
        )
    host.sshd_pid, host.sshd_start = proc.pid, alive_start(read_stat(proc.pid))


def _banner(address: str) -> str | None:
    try:
        with socket.create_connection((address, 22), timeout=2) as sock:
            sock.settimeout(2)
            greeting = sock.recv(64)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if greeting.startswith(b"SSH-2.0-") else f"greeted with {greeting[:40]!r}"


def _wait_sshd(network: Network, host: Host, deadline: float) -> None:
    reason: str | None = "not tried"
    while time.monotonic() < deadline:
        reason = _banner(host.address)
        if reason is None:
            return
        if host.sshd_pid is None or alive_start(read_stat(host.sshd_pid)) is None:
            tail = (network.home / host.name / "sshd.log").read_text(errors="replace")[-800:]
            raise HostsError(f"sshd of host {host.name} exited: {tail.strip()}")
        time.sleep(0.05)
    raise HostsError(f"sshd of host {host.name} on {host.address}:22 not ready in time: {reason}")


def create(directory: Path, names: list[str], timeout_s: float = 60.0) -> Network:
    """Make one namespace host per name, each with its sshd answering; on any failure remove everything made."""
    require_privileges()
    if not 0 < len(names) <= MAX_HOSTS:
        raise HostsError(f"between 1 and {MAX_HOSTS} hosts, not {len(names)}")
    home = Path(directory).resolve() / "hosts"
    if Network.load(home) is not None:
        raise HostsError(f"{home / RECORD} already lists hosts: remove them first (stack down --dir {directory})")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    token = secrets.token_hex(3)
    subnet = free_subnet()
    addresses = list(subnet.hosts())
    network = Network(str(home), token, f"chb{token}", str(subnet), str(addresses[0]))
    deadline = time.monotonic() + timeout_s
    try:
        network.save()  # before anything exists, so a crash from here on leaves a record
        ip("link", "add", network.bridge, "type", "bridge")
        ip("addr", "add", f"{network.bridge_address}/24", "dev", network.bridge)
        ip("link", "set", network.bridge, "up")
        public = _keygen(network.key, "chaos-hosts")
        (home / "authorized_keys").write_text(public + "\n")
        network.known_hosts.write_text("")
        for index, name in enumerate(names):
            host = Host(name, f"ch{token}-{name}", str(addresses[FIRST_HOST - 1 + index]), f"chv{token}{index}")
            network.hosts.append(host)
            network.save()
            _make_host(network, host, index)
            _start_sshd(network, host)
            network.save()
        with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
            list(pool.map(lambda h: _wait_sshd(network, h, deadline), network.hosts))
    except BaseException:
        destroy(Path(directory))
        raise
    return network


def netns_pids(netns: str) -> list[int]:
    """Every process whose network namespace is `netns` (`ip netns pids`)."""
    result = ip("netns", "pids", netns, check=False)
    return [int(word) for word in result.stdout.split() if word.isdigit()]


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            if sig == signal.SIGTERM:
                os.kill(pid, signal.SIGCONT)  # a paused process would never act on SIGTERM


def stop_processes(netns_names: list[str], timeout_s: float = 10.0) -> int:
    """SIGTERM every process in the namespaces, SIGKILL what is left after `timeout_s`; how many there were."""
    pids = [pid for name in netns_names for pid in netns_pids(name)]
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(netns_pids(name) for name in netns_names):
        time.sleep(0.1)
    _signal([pid for name in netns_names for pid in netns_pids(name)], signal.SIGKILL)
    kill_deadline = time.monotonic() + 5.0
    while time.monotonic() < kill_deadline and any(netns_pids(name) for name in netns_names):
        time.sleep(0.05)
    return len(pids)


def destroy(directory: Path, timeout_s: float = 10.0) -> list[str]:
    """Remove what DIR/hosts/hosts.json lists: every process in its namespaces, the namespaces, veths and bridge."""
    home = Path(directory).resolve() / "hosts"
    network = Network.load(home)
    if network is None:
        return []
    existing = set(ip("netns", "list", check=False).stdout.split())
    namespaces = [h.netns for h in network.hosts if h.netns in existing]
    count = stop_processes(namespaces, timeout_s)
    report = [f"stopped {count} process(es) on {len(namespaces)} host(s)"]
    for host in network.hosts:
        if host.netns in existing:
            ip("netns", "del", host.netns, check=False)
        if ip("link", "show", host.veth, check=False).returncode == 0:
            ip("link", "del", host.veth, check=False)
    if ip("link", "show", network.bridge, check=False).returncode == 0:
        ip("link", "del", network.bridge, check=False)
    report.append(f"removed {len(network.hosts)} namespace host(s) and bridge {network.bridge} ({network.subnet})")
    (home / RECORD).unlink(missing_ok=True)
    return report
