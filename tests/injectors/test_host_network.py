"""host.partition / reject / packet_loss / bandwidth on this host: real nftables, real TCP on loopback ports.

Every fault here names a port a test server holds, so the rest of the machine's loopback traffic is
untouched; every table a test made is deleted at its end, whatever happened.
"""

from __future__ import annotations

import functools
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from clients.nft import LocalShell, Nft, NftError, NftMissingError, Rule, chain_rules, table_script
from engine.stack import LiveStack
from injectors.errors import FaultStillPresentError, InjectionError, TargetNotFoundError
from injectors.host.bandwidth import HostBandwidthInjector, HostBandwidthSpec
from injectors.host.common import HostNetFault
from injectors.host.packet_loss import HostPacketLossInjector, HostPacketLossSpec
from injectors.host.partition import HostPartitionInjector, HostPartitionSpec
from injectors.host.reject import HostRejectInjector, HostRejectSpec
from injectors.registry import get_injector
from injectors.selection import Selection
from stackspec.targets import ProcessInstance, ProcessTarget, SshHost, StackDescription
from tests.injectors.hostnet_support import (
    RUN_ID,
    Server,
    connects,
    ctx_for,
    our_tables_deleted,
    plan_for,
    read_for,
    received_in,
    server,
    stack_with,
)
from tests.support.helpers import free_port

pytestmark = [pytest.mark.infra, pytest.mark.usefixtures("our_tables_deleted")]
__all__ = ["our_tables_deleted", "server"]  # fixtures


def test_the_ruleset_matches_far_side_addresses_and_ports_and_keeps_the_ssh_port_open() -> None:
    rules = chain_rules("egress", ["10.0.0.5", "fd00::/64"], [2181, 6379], [Rule("counter drop")], keep_tcp_port=2222)
    assert rules == [
        "tcp sport 2222 accept",
        "tcp dport 2222 accept",
        "ip daddr { 10.0.0.5/32 } meta l4proto { tcp, udp } th dport { 2181, 6379 } counter drop",
        "ip6 daddr { fd00::/64 } meta l4proto { tcp, udp } th dport { 2181, 6379 } counter drop",
    ]
    assert chain_rules("ingress", [], [80], [Rule("counter reject with tcp reset", l4="tcp")]) == [
        "tcp sport { 80 } counter reject with tcp reset"
    ]
    script = table_script("chaos_x", {"ingress": ["counter drop"]})
    assert "type filter hook input" in script and "hook output" not in script
    with pytest.raises(ValueError, match="not a valid nftables table name"):
        table_script("x; flush ruleset", {})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "name the far side"),
        ({"addresses": ["10.0.0.300"]}, "does not appear to be an IPv4 or IPv6"),
        ({"ports": [0]}, "greater than or equal to 1"),
        ({"ports": [80], "direction": "sideways"}, "direction"),
    ],
)
def test_bad_params_are_refused_before_anything_runs(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        get_injector("host.partition").parse_params(params)


def test_partition_drops_the_port_until_rollback_and_verify_proves_the_table_gone(
    server: Server, tmp_path: Path
) -> None:
    stack = stack_with(tmp_path, app=None)
    injector = HostPartitionInjector(HostPartitionSpec(addresses=["127.0.0.1"], ports=[server.port]))
    ctx = ctx_for(stack)
    assert connects(server.port) == "ok"
    plan = plan_for(injector, stack)
    (ref,) = plan.targets
    table = str(ref.detail["table"])
    assert table.startswith(f"chaos_{RUN_ID.replace('-', '_')}_partition_") and ref.id == "this host"
    assert not Nft(LocalShell()).exists(table), "resolving applied nothing"

    (injected,) = injector.inject(plan, ctx)
    assert injected.ok, injected.error
    assert injected.measured["applied_after_s"] > 0
    assert connects(server.port) == "timeout"
    with pytest.raises(FaultStillPresentError, match="still on this host"):
        injector.verify_one(ref, plan, ctx)

    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["removed"] is True
    assert int(undone.detail["egress_packets"]) >= 1  # the dropped SYNs were counted
    assert connects(server.port) == "ok"
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok and verified.detail["absent"] is True
    (again,) = injector.rollback(plan, ctx)  # idempotent: a second rollback finds nothing to delete
    assert again.ok and again.detail["removed"] is False


def test_reject_refuses_at_once_and_only_that_port(server: Server, tmp_path: Path) -> None:
    other = Server()
    try:
        stack = stack_with(tmp_path, app=None)
        injector = HostRejectInjector(HostRejectSpec(ports=[server.port], direction="egress"))
        plan = plan_for(injector, stack)
        assert "hook input" not in str(plan.targets[0].detail["script"])
        (injected,) = injector.inject(plan, ctx_for(stack))
        assert injected.ok, injected.error
        started = time.monotonic()
        assert connects(server.port, timeout_s=3) == "refused"
        assert time.monotonic() - started < 2.5, "a reset comes at once, not after a timeout"
        assert connects(other.port) == "ok", "another port is untouched"
    finally:
        other.close()
        injector.rollback(plan, ctx_for(stack))
    assert connects(server.port) == "ok"


def test_full_packet_loss_stalls_and_partial_loss_drops_some(server: Server, tmp_path: Path) -> None:
    stack = stack_with(tmp_path, app=None)
    ctx = ctx_for(stack)
    injector = HostPacketLossInjector(HostPacketLossSpec(addresses=["127.0.0.1"], ports=[server.port], percent=100))
    plan = plan_for(injector, stack)
    injector.inject(plan, ctx)
    try:
        assert connects(server.port) == "timeout"
    finally:
        injector.rollback(plan, ctx)
    some = HostPacketLossInjector(HostPacketLossSpec(ports=[server.port], percent=30, direction="ingress"))
    plan = plan_for(some, stack)
    # On a connection already open (a lost SYN-ACK would only delay the connect by a second or more).
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as conn:
        some.inject(plan, ctx)
        try:
            assert read_for(conn, 2.0) > 0, "30% loss slows a connection, it does not cut it"
        finally:
            (undone,) = some.rollback(plan, ctx)
    assert int(undone.detail["ingress_packets"]) > 0


def test_bandwidth_caps_the_rate_and_rollback_lifts_the_cap(server: Server, tmp_path: Path) -> None:
    stack = stack_with(tmp_path, app=None)
    ctx = ctx_for(stack)
    unlimited = received_in(server.port, 1.0)
    injector = HostBandwidthInjector(HostBandwidthSpec(ports=[server.port], rate_kbytes_per_s=200, direction="ingress"))
    plan = plan_for(injector, stack)
    injector.inject(plan, ctx)
    try:
        capped = received_in(server.port, 2.0)
    finally:
        injector.rollback(plan, ctx)
    # 200 kB/s for 2 s, with the limiter's burst and the socket buffers' slack: far below the unlimited rate.
    assert 0 < capped < 2 * 200 * 1024 * 3, capped
    assert unlimited > 10 * capped, (unlimited, capped)
    assert received_in(server.port, 1.0) > 10 * capped / 2


def test_loopback_without_ports_is_refused_on_this_host(tmp_path: Path) -> None:
    stack = stack_with(tmp_path, app=None)
    injector = HostPartitionInjector(HostPartitionSpec(addresses=["127.0.0.0/8"]))
    with pytest.raises(InjectionError, match="limit the fault with `ports`"):
        injector.resolve("app", None, ctx_for(stack))


def test_a_missing_nft_is_refused_at_resolve_naming_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NftMissingError, match=r"this host has no `nft-absent` \(nftables\): install it"):
        Nft(LocalShell(), program="nft-absent").tables()
    monkeypatch.setattr("injectors.host.common.Nft", functools.partial(Nft, program="nft-absent"))
    injector = HostPartitionInjector(HostPartitionSpec(ports=[free_port()]))
    with pytest.raises(TargetNotFoundError, match=r"install it \(Debian: apt-get"):
        injector.resolve("app", None, ctx_for(stack_with(tmp_path, app=None)))


def test_a_ruleset_the_kernel_refuses_fails_the_check_and_applies_nothing() -> None:
    nft = Nft(LocalShell())
    bad = table_script(f"chaos_{RUN_ID.replace('-', '_')}_bad", {"egress": ["ip daddr 10.0.0.1 counter frobnicate"]})
    with pytest.raises(NftError, match="nftables refuses the fault's rules"):
        nft.check(bad)
    assert not any(t.endswith("_bad") for t in nft.tables())


def test_instances_on_one_host_share_one_table_and_peers_on_this_host_need_addresses_from_a_remote_one(
    tmp_path: Path,
) -> None:
    stack = stack_with(tmp_path, a=None, b=None)
    injector = HostPartitionInjector(HostPartitionSpec(ports=[free_port()]))
    (ref,) = plan_for(injector, stack, Selection(all=True)).targets
    assert ref.detail["instances"] == ["a", "b"]
    remote = SshHost(address="10.9.9.9", user="chaos")
    desc = StackDescription(
        name="hostnet",
        market_hours=None,
        targets={
            "app": ProcessTarget(instances=[ProcessInstance(name="r", argv=["true"], host=remote)]),
            "db": ProcessTarget(instances=[ProcessInstance(name="here", argv=["true"])]),
        },
    )
    peers = HostPartitionInjector(HostPartitionSpec(peers=["db"]))
    with pytest.raises(TargetNotFoundError, match="give it in `addresses`"):
        peers.resolve("app", None, ctx_for(LiveStack(desc, tmp_path / "s2.json")))
    assert issubclass(HostPartitionInjector, HostNetFault)
