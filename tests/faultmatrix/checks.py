"""Direct checks for the fault matrix: is a fault in effect, is it gone — probed without the injectors' code.

Every check re-reads the stack's description (state.json of the reference stack, whose restarts change
PIDs, or the matrix's stack file) and asks the thing itself over its own protocol: /proc for processes,
HTTP for services and the Toxiproxy API, RESP for Redis and Sentinel, the `srvr` four-letter word for
ZooKeeper, the Docker Engine API (docker SDK) for containers, and raw HTTP to the Kubernetes API for
pods, Deployments and nodes. A check raises AssertionError saying what it saw.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from injectors.base import FaultPlan
from stackspec.targets import (
    ContainerInstance,
    ContainerTarget,
    HttpHealth,
    KubernetesTarget,
    LinkInstance,
    LinkTarget,
    ProcessInstance,
    ProcessTarget,
    RedisHealth,
    StackDescription,
    ZooKeeperHealth,
)

SENTINEL_MASTER = "trading"
FAST_S = 0.25  # a healthy loopback round trip is a few ms; a 2-core machine under test load gets slack


@dataclass(frozen=True)
class Live:
    """The stack as state.json describes it right now."""

    state: StackDescription

    @classmethod
    def read(cls, stack_dir: Path) -> Live:
        """The reference stack in `stack_dir`."""
        return cls.load(stack_dir / "state.json")

    @classmethod
    def load(cls, path: Path) -> Live:
        """A stack description file (JSON)."""
        return cls(StackDescription.model_validate_json(path.read_text()))

    def instances(self, target: str) -> list[ProcessInstance]:
        group = self.state.targets[target]
        assert isinstance(group, ProcessTarget), f"{target} is not a process target"
        return group.instances

    def instance(self, target: str, name: str) -> ProcessInstance:
        return next(i for i in self.instances(target) if i.name == name)

    def link(self, target: str, name: str) -> LinkInstance:
        group = self.state.targets[target]
        assert isinstance(group, LinkTarget), f"{target} is not a link target"
        return next(i for i in group.instances if i.name == name)

    def proxy(self, name: str) -> dict[str, Any]:
        """The proxy as the Toxiproxy API shows it (GET /proxies/NAME): enabled, listen, toxics."""
        assert self.state.toxiproxy is not None
        with urllib.request.urlopen(f"{self.state.toxiproxy.url}/proxies/{name}", timeout=2) as answer:
            body: dict[str, Any] = json.loads(answer.read())
        return body


Check = Callable[[Live, FaultPlan], None]


def both(*checks: Check) -> Check:
    def check(live: Live, plan: FaultPlan) -> None:
        for each in checks:
            each(live, plan)

    return check


# -- processes -----------------------------------------------------------------------------------


def proc_state(pid: int | None, start_time: int | None = None) -> str | None:
    """The /proc state letter of `pid` if it is alive (and still started at `start_time`), else None."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X") or (start_time is not None and int(fields[19]) != start_time):
        return None
    return fields[0]


def http_get(url: str, timeout_s: float = 1.0) -> float:
    """Seconds a GET took to answer 200; raises AssertionError otherwise."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            answer.read()
            status = answer.status
    except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, reset, cut short, garbled
        raise AssertionError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    assert status == 200, f"GET {url} answered {status}"
    return time.monotonic() - started


def serving(instance: ProcessInstance) -> None:
    """The instance answers on its own protocol (HTTP health, Redis PING, ZooKeeper srvr)."""
    if "http" in instance.ports:
        http_get(f"http://127.0.0.1:{instance.ports['http']}/health")
    elif isinstance(instance.health, RedisHealth):
        assert rcall(address(instance), "PING") is True, f"{instance.name} does not answer PING"
    elif isinstance(instance.health, ZooKeeperHealth):
        assert srvr_mode(address(instance)) is not None, f"{instance.name} does not serve"


def address(instance: ProcessInstance) -> str:
    return f"127.0.0.1:{instance.ports['client']}"


def planned_dead(live: Live, plan: FaultPlan) -> None:
    """Every process the plan hit is gone (killed)."""
    for ref in plan.targets:
        state = proc_state(ref.detail["pid"], ref.detail.get("start_time"))
        assert state is None, f"{ref.id} (pid {ref.detail['pid']}) is still alive (state {state})"


def planned_stopped(live: Live, plan: FaultPlan) -> None:
    """Every process the plan hit is frozen (SIGSTOP)."""
    for ref in plan.targets:
        state = proc_state(ref.detail["pid"], ref.detail.get("start_time"))
        assert state == "T", f"{ref.id} (pid {ref.detail['pid']}) is not stopped (state {state})"


def running_again(*, new_pid: bool) -> Check:
    """Every process the plan hit runs (a new PID after a kill, the same one after a freeze) and serves."""

    def check(live: Live, plan: FaultPlan) -> None:
        for ref in plan.targets:
            instance = live.instance(plan.target, ref.id)
            state = proc_state(instance.pid, instance.start_time)
            assert state is not None, f"{ref.id} is not running (state.json pid {instance.pid})"
            assert state != "T", f"{ref.id} (pid {instance.pid}) is still stopped"
            if new_pid:
                assert instance.pid != ref.detail["pid"], f"{ref.id} still has pid {instance.pid}: never restarted?"
            else:
                assert instance.pid == ref.detail["pid"], (
                    f"{ref.id} was replaced ({ref.detail['pid']} → {instance.pid})"
                )
            serving(instance)

    return check


# -- links (Toxiproxy) ---------------------------------------------------------------------------


def through(live: Live, plan: FaultPlan, timeout_s: float) -> list[float]:
    """GET /health on the service behind each planned link, through the link's proxy: seconds each took."""
    return [http_get(f"http://{live.link(plan.target, ref.id).listen}/health", timeout_s) for ref in plan.targets]


def toxics_in_place(live: Live, plan: FaultPlan) -> None:
    for ref in plan.targets:
        names = {t["name"] for t in live.proxy(ref.detail["proxy"])["toxics"]}
        ours = set(dict(ref.detail["toxics"]).values())
        assert ours <= names, f"toxics {sorted(ours - names)} are not on {ref.detail['proxy']}"


def link_broken(live: Live, plan: FaultPlan) -> None:
    """No answer comes through the link (held, cut, reset or refused)."""
    for ref in plan.targets:
        try:
            took = http_get(f"http://{live.link(plan.target, ref.id).listen}/health", timeout_s=0.5)
        except AssertionError:
            continue
        raise AssertionError(f"{ref.id} still answers through the fault ({took:.3f}s)")


def link_slower_than(seconds: float) -> Check:
    """Answers through each planned link take at least `seconds` (a healthy one takes a few ms)."""

    def check(live: Live, plan: FaultPlan) -> None:
        took = through(live, plan, timeout_s=5.0)
        assert min(took) >= seconds, f"answers through the link are not slowed down to {seconds}s: {took}"

    return check


def links_clean(live: Live, plan: FaultPlan) -> None:
    """Each planned link's proxy is enabled, carries no toxic at all, and answers fast through it."""
    for ref in plan.targets:
        proxy = live.proxy(ref.detail["proxy"])
        assert proxy["enabled"] is True, f"proxy {proxy['name']} is disabled"
        assert proxy["toxics"] == [], f"proxy {proxy['name']} still has toxics {proxy['toxics']}"
    took = through(live, plan, timeout_s=2.0)
    assert max(took) < FAST_S, f"answers through the links are slow: {took}"


def links_disabled(live: Live, plan: FaultPlan) -> None:
    for ref in plan.targets:
        proxy = live.proxy(ref.detail["proxy"])
        assert proxy["enabled"] is False, f"proxy {proxy['name']} is still enabled"


# -- Redis and Sentinel --------------------------------------------------------------------------


def rcall(address: str, *command: str, timeout_s: float = 1.0) -> Any:
    """One Redis command on a fresh connection: explicit timeouts, no retries (they would hide a fault)."""
    host, _, port = address.rpartition(":")
    client = Redis(
        host=host,
        port=int(port),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def replication(address: str) -> dict[str, str]:
    """INFO replication (redis-py parses it into a dict), values as strings."""
    return {str(key): str(value) for key, value in dict(rcall(address, "INFO", "replication")).items()}


def redis_whole(live: Live, plan: FaultPlan) -> None:
    """Every node runs and answers; exactly one master, every replica linked to it, every Sentinel naming
    it; a write and a read on it are fast (no pause, no DEBUG SLEEP left)."""
    nodes = live.instances("redis")
    for node in nodes:
        state = proc_state(node.pid, node.start_time)
        assert state not in (None, "T"), f"{node.name} (pid {node.pid}) is not running normally (state {state})"
    info = {node.name: replication(address(node)) for node in nodes}
    masters = [name for name, i in info.items() if i["role"] == "master"]
    assert len(masters) == 1, f"expected one master, found {masters}"
    primary = live.instance("redis", masters[0])
    port = primary.ports["client"]
    for name, i in info.items():
        if name != primary.name:
            seen = (i["role"], int(i.get("master_port", 0)), i.get("master_link_status"))
            assert seen == ("slave", port, "up"), f"{name} is not a linked replica of {primary.name}: {seen}"
    for sentinel in live.instances("sentinel"):
        named = rcall(address(sentinel), "SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
        assert named and int(named[1]) == port, f"{sentinel.name} names {named}, the master is {primary.name}"
    started = time.monotonic()
    try:
        rcall(address(primary), "SET", "chaos:matrix", plan.kind)
        assert rcall(address(primary), "GET", "chaos:matrix") == plan.kind
    except RedisError as exc:
        raise AssertionError(f"SET/GET on the master {primary.name} failed: {exc}") from exc
    took = time.monotonic() - started
    assert took < FAST_S, f"SET+GET on the master took {took:.3f}s"


def redis_writes_held(live: Live, plan: FaultPlan) -> None:
    (ref,) = plan.targets
    try:
        rcall(ref.detail["address"], "SET", "chaos:matrix", "held?", timeout_s=0.3)
    except RedisError:
        return
    raise AssertionError(f"a write to {ref.id} went through the CLIENT PAUSE")


def redis_slowed(live: Live, plan: FaultPlan) -> None:
    (ref,) = plan.targets
    took = []
    for _ in range(4):
        started = time.monotonic()
        rcall(ref.detail["address"], "PING", timeout_s=3.0)
        took.append(time.monotonic() - started)
        time.sleep(0.05)
    assert max(took) >= 0.1, f"PINGs to {ref.id} are not held up by DEBUG SLEEP: {took}"


def redis_promoted(live: Live, plan: FaultPlan) -> None:
    """A majority of the Sentinels name another primary than the planned one (within 15 s)."""
    (ref,) = plan.targets
    old = int(ref.detail["address"].rpartition(":")[2])
    deadline = time.monotonic() + 15
    named: list[int | None] = []
    while time.monotonic() < deadline:
        named = []
        for sentinel in live.instances("sentinel"):
            try:
                reply = rcall(address(sentinel), "SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
                named.append(int(reply[1]) if reply else None)
            except RedisError:
                named.append(None)
        if sum(port not in (None, old) for port in named) >= 2:
            return
        time.sleep(0.1)
    raise AssertionError(f"the Sentinels still name port {old} as primary: {named}")


# -- ZooKeeper -----------------------------------------------------------------------------------


def srvr_mode(address: str, timeout_s: float = 1.0) -> str | None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(b"srvr")
            text = b""
            while chunk := sock.recv(4096):
                text += chunk
    except OSError:
        return None
    modes = [line.split(":", 1)[1].strip() for line in text.decode(errors="replace").splitlines() if "Mode:" in line]
    return modes[0] if modes else None


def zookeeper_quorum(live: Live, plan: FaultPlan) -> None:
    """Every server runs and serves as leader or follower, with exactly one leader."""
    modes = {}
    for node in live.instances("zookeeper"):
        state = proc_state(node.pid, node.start_time)
        assert state not in (None, "T"), f"{node.name} (pid {node.pid}) is not running normally (state {state})"
        modes[node.name] = srvr_mode(address(node))
    assert all(mode in ("leader", "follower") for mode in modes.values()), f"not every server serves: {modes}"
    assert list(modes.values()).count("leader") == 1, f"expected one leader: {modes}"


def zookeeper_links_clean(live: Live, plan: FaultPlan) -> None:
    """The client's links are enabled, carry no toxic, and a server answers `srvr` through each of them."""
    for ref in plan.targets:
        proxy = live.proxy(ref.detail["proxy"])
        assert proxy["enabled"] is True and proxy["toxics"] == [], f"proxy {proxy['name']}: {proxy}"
        mode = srvr_mode(live.link(plan.target, ref.id).listen)
        assert mode in ("leader", "follower"), f"no ZooKeeper answer through {ref.id} (mode {mode})"


# -- containers (the engine's own API, through the docker SDK) ---------------------------------------


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


# -- Kubernetes (raw HTTP to the API server) -------------------------------------------------------


def kube_get(live: Live, target: str, path: str, **query: str) -> dict[str, Any] | None:
    """GET `path` on the target's API server (its `token_env` token, if any); None on 404."""
    group = live.state.targets[target]
    assert isinstance(group, KubernetesTarget) and group.api.api_url is not None, f"{target}: no api_url"
    url = group.api.api_url.rstrip("/") + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    request = urllib.request.Request(url)
    if group.api.token_env is not None:
        request.add_header("Authorization", f"Bearer {os.environ[group.api.token_env]}")
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            body: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise AssertionError(f"GET {url} answered {exc.code}") from exc
    return body


def _active(pod: dict[str, Any]) -> bool:
    return "deletionTimestamp" not in pod["metadata"]


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return _active(pod) and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def deployment_state(live: Live, target: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Deployment of a `deployment` target and the pods its selector matches."""
    group = live.state.targets[target]
    assert isinstance(group, KubernetesTarget) and group.deployment is not None
    ns = group.namespace
    deployment = kube_get(live, target, f"/apis/apps/v1/namespaces/{ns}/deployments/{group.deployment}")
    assert deployment is not None, f"deployment {ns}/{group.deployment} is gone"
    labels = deployment["spec"]["selector"]["matchLabels"]
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = kube_get(live, target, f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)
    assert pods is not None
    return deployment, list(pods["items"])


def deployment_whole(target: str, replicas: int) -> Check:
    """The Deployment wants `replicas` (its count before the fault), reports them all ready, and exactly that
    many of its pods are Ready and not terminating."""

    def check(live: Live, plan: FaultPlan) -> None:
        deployment, pods = deployment_state(live, target)
        name, status = deployment["metadata"]["name"], deployment.get("status") or {}
        assert deployment["spec"]["replicas"] == replicas, f"{name} wants {deployment['spec']['replicas']} replicas"
        seen = (status.get("replicas"), status.get("readyReplicas"))
        assert seen == (replicas, replicas), f"{name} reports (replicas, ready) {seen}, not {replicas}"
        ready = sum(1 for p in pods if _ready(p))
        assert ready == replicas, f"{ready} of {name}'s pods are ready, not {replicas}"

    return check


def scaled_to(target: str, replicas: int) -> Check:
    def check(live: Live, plan: FaultPlan) -> None:
        deployment, pods = deployment_state(live, target)
        assert deployment["spec"]["replicas"] == replicas, f"wants {deployment['spec']['replicas']} replicas"
        active = sum(1 for p in pods if _active(p))
        assert active == replicas, f"{active} pods are not terminating, not {replicas}"

    return check


def pods_deleted(live: Live, plan: FaultPlan) -> None:
    """Every planned pod is gone or terminating (a successor under its name would have another uid)."""
    for ref in plan.targets:
        pod = kube_get(live, plan.target, f"/api/v1/namespaces/{ref.detail['namespace']}/pods/{ref.id}")
        if pod is not None and pod["metadata"]["uid"] == ref.detail["uid"]:
            assert not _active(pod), f"pod {ref.id} is still there, not terminating"


def _node(live: Live, plan: FaultPlan, name: str) -> dict[str, Any]:
    node = kube_get(live, plan.target, f"/api/v1/nodes/{name}")
    assert node is not None, f"node {name} is gone"
    return node


def nodes_cordoned(live: Live, plan: FaultPlan) -> None:
    for ref in plan.targets:
        assert _node(live, plan, ref.id)["spec"].get("unschedulable") is True, f"node {ref.id} is schedulable"


def nodes_drained(live: Live, plan: FaultPlan) -> None:
    """Cordoned, and no pod a controller owns runs on the node any more."""
    nodes_cordoned(live, plan)
    for ref in plan.targets:
        pods = kube_get(live, plan.target, "/api/v1/pods", fieldSelector=f"spec.nodeName={ref.id}")
        assert pods is not None
        left = [p["metadata"]["name"] for p in pods["items"] if _active(p) and p["metadata"].get("ownerReferences")]
        assert not left, f"pods still on node {ref.id}: {left}"


def nodes_schedulable(live: Live, plan: FaultPlan) -> None:
    """Every planned node is schedulable again: no `spec.unschedulable`, no unschedulable taint."""
    for ref in plan.targets:
        spec = _node(live, plan, ref.id)["spec"]
        assert not spec.get("unschedulable"), f"node {ref.id} is still cordoned"
        taints = [t["key"] for t in spec.get("taints") or []]
        assert "node.kubernetes.io/unschedulable" not in taints, f"node {ref.id} still has taints {taints}"
