"""Network injectors and the Toxiproxy adapter against the embedded Toxiproxy-API server, over real TCP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from clients.health import wait_healthy
from clients.procs import spawn
from clients.toxiproxy import ToxiproxyClient, ToxiproxyError
from engine.context import EngineContext
from engine.events import EventBus
from engine.stack import LiveStack
from injectors.base import FaultPlan, FaultSpec, Injector
from injectors.errors import FaultStillPresentError, SelectionError, TargetNotFoundError
from injectors.network.bandwidth import NetworkBandwidthInjector, NetworkBandwidthSpec
from injectors.network.common import LinkSpec, ToxicInjector
from injectors.network.down import NetworkDownInjector, NetworkDownSpec
from injectors.network.latency import NetworkLatencyInjector, NetworkLatencySpec
from injectors.network.limit_data import NetworkLimitDataInjector, NetworkLimitDataSpec
from injectors.network.reset_peer import NetworkResetPeerInjector, NetworkResetPeerSpec
from injectors.network.slicer import NetworkSlicerInjector, NetworkSlicerSpec
from injectors.network.slow_close import NetworkSlowCloseInjector, NetworkSlowCloseSpec
from injectors.network.timeout import NetworkTimeoutInjector, NetworkTimeoutSpec
from injectors.selection import Selection
from stackspec.targets import (
    HttpHealth,
    LinkInstance,
    LinkTarget,
    ProcessInstance,
    ProcessTarget,
    StackDescription,
    ToxiproxyEndpoint,
)
from tests.support.helpers import ROOT, free_port, listening_url


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaosproxy", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # its log; an unread pipe could fill and stall it
        text=True,
    )
    try:
        yield listening_url(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def clients() -> Iterator[list[ProcessInstance]]:
    """Two client processes reporting roles, so links can be selected by their client's role."""
    instances = []
    for name, role in (("svc-1", "leader"), ("svc-2", "follower")):
        port = free_port()
        inst = spawn(
            ProcessInstance(
                name=name,
                argv=[sys.executable, str(ROOT / "tests" / "cli" / "svc.py"), str(port), role],
                health=HttpHealth(http=f"http://127.0.0.1:{port}/health"),
                role_url=f"http://127.0.0.1:{port}/status",
            )
        )
        assert inst.health is not None
        wait_healthy(inst.health, 10)
        instances.append(inst)
    yield instances
    for inst in instances:
        assert inst.pid is not None
        os.kill(inst.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(inst.pid, 0)


@pytest.fixture
def stack(toxiproxy: str, echo: str, clients: list[ProcessInstance]) -> Iterator[LiveStack]:
    api = ToxiproxyClient(toxiproxy, timeout_s=2.0)
    api.reset()
    links = []
    for client in clients:
        name = f"{client.name}->echo"
        proxy = f"{client.name}_to_echo"
        with contextlib.suppress(ToxiproxyError):
            api.delete_proxy(proxy)
        created = api.create_proxy(proxy, f"127.0.0.1:{free_port()}", echo)
        links.append(LinkInstance(name=name, proxy=proxy, listen=created.listen, upstream=echo, client=client.name))
    desc = StackDescription(
        name="net-test",
        toxiproxy=ToxiproxyEndpoint(url=toxiproxy),
        targets={
            "svc->echo": LinkTarget(client_target="svc", instances=links),
            "svc": ProcessTarget(instances=clients),
        },
    )
    yield LiveStack(desc, None)
    api.reset()


def ctx_for(stack: LiveStack) -> EngineContext:
    return EngineContext("net-test", stack, seed=1, bus=EventBus())


def plan_for(injector: Injector[FaultSpec], stack: LiveStack, select: Selection | None) -> FaultPlan:
    refs = injector.resolve("svc->echo", select, ctx_for(stack))
    return FaultPlan(
        kind=injector.kind, target="svc->echo", params=injector.spec.model_dump(), select=select, targets=refs
    )


def round_trip_ms(address: str, payload: bytes = b"ping") -> float:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        started = time.perf_counter()
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            got += chunk
        return (time.perf_counter() - started) * 1000


def listen_of(stack: LiveStack, name: str) -> str:
    group = stack.target("svc->echo")
    assert isinstance(group, LinkTarget)
    return next(i.listen for i in group.instances if i.name == name)


def test_latency_on_the_leaders_link_only_then_exactly_removed(stack: LiveStack, toxiproxy: str) -> None:
    ctx = ctx_for(stack)
    injector = NetworkLatencyInjector(NetworkLatencySpec(latency_ms=150, jitter_ms=0))
    plan = plan_for(injector, stack, Selection(role="leader"))
    assert [t.id for t in plan.targets] == ["svc-1->echo"]
    leader, other = listen_of(stack, "svc-1->echo"), listen_of(stack, "svc-2->echo")
    api = ToxiproxyClient(toxiproxy)
    foreign = api.add_toxic("svc-1_to_echo", "someone_elses", "latency", {"latency": 1})

    assert all(r.ok for r in injector.inject(plan, ctx))
    assert round_trip_ms(leader) >= 145
    assert round_trip_ms(other) < 50
    with pytest.raises(FaultStillPresentError):
        injector.verify_one(plan.targets[0], plan, ctx)

    assert all(r.ok for r in injector.rollback(plan, ctx))
    assert all(r.ok for r in injector.verify_gone(plan, ctx))
    assert [t.name for t in api.toxics("svc-1_to_echo")] == [foreign.name]  # only ours removed
    assert round_trip_ms(leader) < 50
    (again,) = injector.rollback(plan, ctx)  # idempotent
    assert again.ok and again.detail["removed"] == []


def test_down_refuses_connections_and_rollback_restores_the_link(stack: LiveStack) -> None:
    ctx = ctx_for(stack)
    injector = NetworkDownInjector(NetworkDownSpec())
    plan = plan_for(injector, stack, Selection(name="svc-2->echo"))
    address = listen_of(stack, "svc-2->echo")
    host, port = address.rsplit(":", 1)
    open_conn = socket.create_connection((host, int(port)), timeout=5)
    assert all(r.ok for r in injector.inject(plan, ctx))
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
    open_conn.settimeout(2)
    with contextlib.suppress(OSError):
        open_conn.sendall(b"x")
    try:
        assert open_conn.recv(10) == b""  # the open connection was cut
    except OSError:
        pass
    finally:
        open_conn.close()
    with pytest.raises(FaultStillPresentError):
        injector.verify_one(plan.targets[0], plan, ctx)
    assert all(r.ok for r in injector.rollback(plan, ctx))
    assert all(r.ok for r in injector.verify_gone(plan, ctx))
    assert round_trip_ms(address) < 50


@pytest.mark.parametrize(
    ("injector", "toxic_type", "attributes"),
    [
        (NetworkBandwidthInjector(NetworkBandwidthSpec(rate_kb_per_s=64)), "bandwidth", {"rate": 64}),
        (NetworkTimeoutInjector(NetworkTimeoutSpec(timeout_ms=500)), "timeout", {"timeout": 500}),
        (NetworkResetPeerInjector(NetworkResetPeerSpec(timeout_ms=10)), "reset_peer", {"timeout": 10}),
        (
            NetworkSlicerInjector(NetworkSlicerSpec(average_size_bytes=8, size_variation_bytes=2, delay_us=100)),
            "slicer",
            {"average_size": 8, "size_variation": 2, "delay": 100},
        ),
        (NetworkLimitDataInjector(NetworkLimitDataSpec(limit_bytes=1000)), "limit_data", {"bytes": 1000}),
        (NetworkSlowCloseInjector(NetworkSlowCloseSpec(delay_ms=300)), "slow_close", {"delay": 300}),
        (
            NetworkLatencyInjector(NetworkLatencySpec(latency_ms=5, jitter_ms=1, stream="both", toxicity=0.5)),
            "latency",
            {"latency": 5, "jitter": 1},
        ),
    ],
)
def test_every_toxic_kind_maps_to_the_api_and_is_removed(
    stack: LiveStack, toxiproxy: str, injector: ToxicInjector[LinkSpec], toxic_type: str, attributes: dict[str, int]
) -> None:
    ctx = ctx_for(stack)
    plan = plan_for(injector, stack, Selection(all=True))
    assert len(plan.targets) == 2
    assert all(r.ok for r in injector.inject(plan, ctx))
    api = ToxiproxyClient(toxiproxy)
    for ref in plan.targets:
        toxics = api.toxics(ref.detail["proxy"])
        expected_streams = ["downstream", "upstream"] if injector.spec.stream == "both" else [injector.spec.stream]
        assert sorted(t.stream for t in toxics) == sorted(expected_streams)
        for toxic in toxics:
            assert toxic.type == toxic_type and toxic.toxicity == injector.spec.toxicity
            assert {k: toxic.attributes[k] for k in attributes} == attributes
    assert all(r.ok for r in injector.rollback(plan, ctx))
    assert all(r.ok for r in injector.verify_gone(plan, ctx))
    assert all(api.toxics(ref.detail["proxy"]) == [] for ref in plan.targets)


def test_resolve_needs_an_existing_proxy_and_a_matching_role(stack: LiveStack) -> None:
    with pytest.raises(SelectionError, match="no instance has role 'observer'"):
        NetworkDownInjector(NetworkDownSpec()).resolve("svc->echo", Selection(role="observer"), ctx_for(stack))
    group = stack.target("svc->echo")
    assert isinstance(group, LinkTarget)
    ghost = group.instances[0].model_copy(update={"proxy": "no_such_proxy"})
    broken = LiveStack(
        stack.description.model_copy(
            update={"targets": {"svc->echo": group.model_copy(update={"instances": [ghost]})}}
        ),
        None,
    )
    with pytest.raises(TargetNotFoundError, match="proxy 'no_such_proxy' of link 'svc-1->echo' at http") as info:
        NetworkDownInjector(NetworkDownSpec()).resolve("svc->echo", None, ctx_for(broken))
    assert isinstance(info.value.__cause__, ToxiproxyError) and info.value.__cause__.status == 404


def test_client_times_out_instead_of_hanging() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        client = ToxiproxyClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(ToxiproxyError, match="unreachable"):
            client.proxies()
        assert time.monotonic() - started < 2
    finally:
        silent.close()
    with pytest.raises(ToxiproxyError, match="unreachable"):
        ToxiproxyClient(f"http://127.0.0.1:{free_port()}", timeout_s=0.3).version()


def test_toxiproxy_python_client_drives_the_embedded_server(toxiproxy: str, echo: str) -> None:
    """The upstream client library works against our server (it is what other tools use)."""
    import toxiproxy as toxiproxy_lib  # the toxiproxy-python package

    server = toxiproxy_lib.Toxiproxy()
    host, port = toxiproxy.removeprefix("http://").rsplit(":", 1)
    server.update_api_consumer(host, int(port))
    listen = f"127.0.0.1:{free_port()}"
    proxy = server.create(upstream=echo, name="lib_client_proxy", listen=listen, enabled=True)
    try:
        assert server.get_proxy("lib_client_proxy") is not None
        proxy.add_toxic(type="latency", attributes={"latency": 120}, name="lib_latency")
        assert round_trip_ms(listen) >= 115
        proxy.destroy_toxic("lib_latency")
        assert round_trip_ms(listen) < 50
    finally:
        proxy.destroy()
    assert "lib_client_proxy" not in ToxiproxyClient(toxiproxy).proxies()
