"""host.* faults on a host reached over SSH: a real sshd on loopback, real nftables there, `chaos.py recover`.

The "remote" host is this machine reached through sshd, so every fault names the test server's port:
the rest of the machine's loopback traffic is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.nft import LocalShell, Nft
from clients.ssh import SshSession
from engine.errors import ExitCode
from engine.journal import FaultRecord
from engine.stack import LiveStack
from engine.undo import LEDGER_FILE, UndoLedger
from injectors.host.partition import HostPartitionInjector, HostPartitionSpec
from stackspec.targets import ProcessInstance, ProcessTarget, StackDescription
from tests.injectors.hostnet_support import RUN_ID, Server, connects, ctx_for, our_tables_deleted, plan_for, server
from tests.injectors.sshd_server import Sshd, start_sshd
from tests.support.helpers import chaos

pytestmark = [pytest.mark.slow, pytest.mark.infra, pytest.mark.usefixtures("our_tables_deleted")]
__all__ = ["our_tables_deleted", "server"]  # fixtures shared with the local tests


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    running = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield running
    running.stop()


def remote_stack(tmp: Path, sshd: Sshd) -> LiveStack:
    instance = ProcessInstance(name="app-1", argv=["true"], host=sshd.host())
    desc = StackDescription(name="hostnet-ssh", targets={"app": ProcessTarget(instances=[instance])}, market_hours=None)
    return LiveStack(desc, tmp / "state.json")


def test_partition_over_ssh_keeps_the_ssh_port_open_and_rolls_back_there(
    sshd: Sshd, server: Server, tmp_path: Path
) -> None:
    stack = remote_stack(tmp_path, sshd)
    ctx = ctx_for(stack)
    # The fault names sshd's own port too: the exemption keeps the framework's connection to the host.
    injector = HostPartitionInjector(HostPartitionSpec(addresses=["127.0.0.1"], ports=[server.port, sshd.port]))
    plan = plan_for(injector, stack)
    (ref,) = plan.targets
    assert ref.id == sshd.host().label and ref.detail["ssh"] == sshd.host().model_dump(mode="json")
    assert f"tcp dport {sshd.port} accept" in str(ref.detail["script"])
    (injected,) = injector.inject(plan, ctx)
    assert injected.ok, injected.error
    try:
        assert connects(server.port) == "timeout"
        with SshSession(sshd.host()) as session:  # a new login still gets through
            assert session.run(["echo", "still here"])[1].strip() == "still here"
    finally:
        (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["removed"] is True, undone.error
    assert connects(server.port) == "ok"
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error


def test_chaos_recover_deletes_a_remote_table_from_the_ledger_alone(sshd: Sshd, server: Server, tmp_path: Path) -> None:
    stack = remote_stack(tmp_path, sshd)
    ctx = ctx_for(stack)
    injector = HostPartitionInjector(HostPartitionSpec(addresses=["127.0.0.1"], ports=[server.port]))
    plan = plan_for(injector, stack)
    table = str(plan.targets[0].detail["table"])
    runs = tmp_path / "runs"
    ledger = UndoLedger.in_runs_dir(runs)
    record = FaultRecord(index=1, kind=plan.kind, target="app", at_s=0, duration_s=1, params=plan.params)
    ledger.pending_write(RUN_ID, record, plan, stack)
    (injected,) = injector.inject(plan, ctx)
    assert injected.ok, injected.error
    assert connects(server.port) == "timeout"

    # A new process, as after a killed runner: the ledger names the host and the table.
    recovered = chaos("recover", "--runs-dir", str(runs))
    assert recovered.returncode == ExitCode.PASSED, recovered.stdout + recovered.stderr
    assert "undone and verified gone" in recovered.stdout
    assert not Nft(LocalShell()).exists(table)
    assert connects(server.port) == "ok"
    assert ledger.pending() == []
    assert table in (runs / LEDGER_FILE).read_text()
