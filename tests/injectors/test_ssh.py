"""process.kill / process.pause on a host reached over SSH: a real sshd on loopback, real processes, real rollback."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.health import problem, wait_healthy
from clients.procs import RemoteHost, spawn, start_time_of, state_of
from clients.ssh import SshError, SshSession
from engine.context import EngineContext
from engine.errors import ExitCode
from engine.events import EventBus
from engine.journal import FaultRecord, load_journal
from engine.stack import LiveStack
from engine.undo import LEDGER_FILE, UndoLedger
from injectors.base import FaultPlan, TargetRef
from injectors.errors import FaultStillPresentError, InjectionError
from injectors.process.kill import ProcessKillInjector, ProcessKillSpec
from injectors.process.pause import ProcessPauseInjector, ProcessPauseSpec
from injectors.selection import Selection
from stackspec.match import ProcessMatch
from stackspec.targets import HttpHealth, ProcessInstance, ProcessTarget, SshHost, StackDescription
from tests.injectors.sshd_server import Sshd, keygen, start_sshd
from tests.support.cli_world import OK_STEADY, only_journal, write_experiment
from tests.support.helpers import chaos, free_port

pytestmark = [pytest.mark.slow, pytest.mark.infra]

SVC = Path(__file__).resolve().parents[1] / "cli" / "svc.py"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat fields after the command name: state, ppid, pgrp, session, ..."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def sessions_started(server: Sshd) -> int:
    """How many remote commands sshd has run so far (it logs each one)."""
    return server.log.read_text().count("Starting session: command")


class Started:
    """Every service a test started (or a rollback restarted): killed at the end, by PID and exact argv."""

    def __init__(self) -> None:
        self.known: dict[int, list[str]] = {}

    def add(self, instance: ProcessInstance) -> None:
        if instance.pid is not None:
            self.known[instance.pid] = instance.argv

    def add_stack(self, desc: StackDescription) -> None:
        for group in desc.targets.values():
            if isinstance(group, ProcessTarget):
                for instance in group.instances:
                    self.add(instance)

    def kill_all(self) -> None:
        for pid, argv in self.known.items():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes() == "\0".join(argv).encode() + b"\0":
                    os.kill(pid, signal.SIGCONT)
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


@pytest.fixture
def started() -> Iterator[Started]:
    tracker = Started()
    yield tracker
    tracker.kill_all()


def service(tmp: Path, name: str, role: str, started: Started, host: SshHost | None) -> ProcessInstance:
    """A real HTTP service started here, then described as running on `host` (the same machine, over SSH)."""
    port = free_port()
    inst = spawn(
        ProcessInstance(
            name=name,
            argv=[sys.executable, str(SVC), str(port), role],
            log=str(tmp / "logs" / f"{name}.log"),
            health=HttpHealth(http=f"http://127.0.0.1:{port}/health"),
            role_url=f"http://127.0.0.1:{port}/status",
            ports={"http": port},
        )
    )
    started.add(inst)
    assert inst.health is not None
    wait_healthy(inst.health, 10)
    return inst.model_copy(update={"host": host})


@pytest.fixture
def remote(tmp_path: Path, sshd: Sshd, started: Started) -> Iterator[LiveStack]:
    instances = [
        service(tmp_path, f"svc-{i}", role, started, sshd.host()) for i, role in ((1, "leader"), (2, "follower"))
    ]
    desc = StackDescription(name="ssh-test", targets={"svc": ProcessTarget(instances=instances)}, market_hours=None)
    live = LiveStack(desc, tmp_path / "state.json")
    yield live
    started.add_stack(live.description)


def ctx_for(stack: LiveStack) -> EngineContext:
    return EngineContext("ssh-test", stack, seed=1, bus=EventBus())


def instance(stack: LiveStack, name: str) -> ProcessInstance:
    group = stack.description.targets["svc"]
    assert isinstance(group, ProcessTarget)
    return next(i for i in group.instances if i.name == name)


def plan_for(injector: ProcessKillInjector | ProcessPauseInjector, stack: LiveStack, select: Selection) -> FaultPlan:
    refs = injector.resolve("svc", select, ctx_for(stack))
    return FaultPlan(kind=injector.kind, target="svc", params=injector.spec.model_dump(), select=select, targets=refs)


def reap(pid: int) -> None:
    # The "remote" service is our child here: after a kill over SSH it is our zombie to collect.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def test_kill_over_ssh_then_restart_over_ssh_and_verify(remote: LiveStack, sshd: Sshd, started: Started) -> None:
    ctx = ctx_for(remote)
    injector = ProcessKillInjector(ProcessKillSpec())
    before = sessions_started(sshd)
    plan = plan_for(injector, remote, Selection(role="leader"))
    assert [(t.id, t.detail["host"]) for t in plan.targets] == [("svc-1", sshd.host().label)]
    old = instance(remote, "svc-1")
    assert old.pid is not None

    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    assert result.detail["pid"] == old.pid and result.detail["host"] == sshd.host().label
    reap(old.pid)
    assert start_time_of(old.pid) is None
    assert instance(remote, "svc-1").pid is None
    with pytest.raises(FaultStillPresentError, match="not running"):
        injector.verify_one(plan.targets[0], plan, ctx)

    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok, undone.error
    assert undone.detail["restarted"] is True and undone.detail["host"] == sshd.host().label
    new = instance(remote, "svc-1")
    started.add(new)
    assert new.pid is not None and new.pid != old.pid
    # The start time read over SSH is the one in /proc here, and the restart came through sshd:
    # not our child, in a session of its own (setsid).
    assert start_time_of(new.pid) == new.start_time
    fields = stat_fields(new.pid)
    assert int(fields[1]) != os.getpid() and int(fields[3]) == new.pid
    assert new.health is not None and problem(new.health) is None
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error
    assert sessions_started(sshd) > before
    # Rollback is idempotent: a second one restarts nothing.
    (again,) = injector.rollback(plan, ctx)
    assert again.ok and again.detail["restarted"] is False and instance(remote, "svc-1").pid == new.pid


def test_pause_over_ssh_then_resume(remote: LiveStack) -> None:
    ctx = ctx_for(remote)
    injector = ProcessPauseInjector(ProcessPauseSpec())
    plan = plan_for(injector, remote, Selection(name="svc-2"))
    pid = instance(remote, "svc-2").pid
    assert pid is not None

    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    assert state_of(pid) == "T"
    with pytest.raises(FaultStillPresentError, match="still stopped"):
        injector.verify_one(plan.targets[0], plan, ctx)

    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and undone.detail["signal"] == "SIGCONT"
    assert state_of(pid) != "T" and instance(remote, "svc-2").pid == pid
    (verified,) = injector.verify_gone(plan, ctx)
    assert verified.ok, verified.error


def test_a_match_rule_finds_the_process_over_ssh_and_the_fault_acts_on_it(remote: LiveStack, sshd: Sshd) -> None:
    """No PID in the description: the rule (the port it listens on) is looked up on the host over SSH."""
    known = instance(remote, "svc-2")
    assert known.pid is not None
    rule = ProcessMatch(listen_port=known.ports["http"], cmdline=r"svc\.py")
    with SshSession(sshd.host()) as session:
        assert RemoteHost(session).find(rule) == [known.pid]
    remote.replace_instance("svc", known.model_copy(update={"pid": None, "start_time": None, "match": rule}))
    ctx = ctx_for(remote)
    injector = ProcessPauseInjector(ProcessPauseSpec())
    plan = plan_for(injector, remote, Selection(name="svc-2"))
    assert plan.targets[0].detail["pid"] == known.pid and plan.targets[0].detail["host"] == sshd.host().label
    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    assert state_of(known.pid) == "T"
    (undone,) = injector.rollback(plan, ctx)
    assert undone.ok and state_of(known.pid) != "T"


def test_chaos_recover_undoes_a_remote_kill_from_the_ledger_alone(
    remote: LiveStack, tmp_path: Path, sshd: Sshd, started: Started
) -> None:
    ctx = ctx_for(remote)
    injector = ProcessKillInjector(ProcessKillSpec())
    plan = plan_for(injector, remote, Selection(name="svc-2"))
    old = instance(remote, "svc-2")
    assert old.pid is not None
    runs = tmp_path / "runs"
    ledger = UndoLedger.in_runs_dir(runs)
    record = FaultRecord(index=1, kind=plan.kind, target="svc", at_s=0, duration_s=1, params=plan.params)
    ledger.pending_write("r-ssh", record, plan, remote)
    (result,) = injector.inject(plan, ctx)
    assert result.ok, result.error
    reap(old.pid)

    # A new Python process, as after a crashed runner: it has only the ledger (and the state file).
    recovered = chaos("recover", "--runs-dir", str(runs))
    saved = StackDescription.model_validate_json((tmp_path / "state.json").read_text())
    started.add_stack(saved)
    assert recovered.returncode == ExitCode.PASSED, recovered.stdout + recovered.stderr
    assert "undone and verified gone" in recovered.stdout
    group = saved.targets["svc"]
    assert isinstance(group, ProcessTarget)
    new = next(i for i in group.instances if i.name == "svc-2")
    assert new.host == sshd.host() and new.pid not in (None, old.pid)
    assert new.pid is not None and start_time_of(new.pid) == new.start_time
    assert ledger.pending() == []
    # The ledger names the key file, never its contents.
    ledger_text = (runs / LEDGER_FILE).read_text()
    assert str(sshd.client_key) in ledger_text
    assert sshd.client_key.read_text().splitlines()[1] not in ledger_text


@pytest.mark.parametrize("known", ["unknown", "changed"])
def test_an_unknown_or_changed_host_key_is_refused_and_nothing_is_killed(
    remote: LiveStack, sshd: Sshd, tmp_path: Path, known: str
) -> None:
    known_hosts = tmp_path / "known_hosts"
    if known == "unknown":
        known_hosts.write_text("")
    else:
        impostor = keygen(tmp_path / "other_host_key")
        known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {impostor}\n")
    real = instance(remote, "svc-1")
    remote.replace_instance("svc", real.model_copy(update={"host": sshd.host(known_hosts=str(known_hosts))}))
    ctx = ctx_for(remote)
    injector = ProcessKillInjector(ProcessKillSpec())
    before = sessions_started(sshd)
    expected = "not in known_hosts" if known == "unknown" else "does not match known_hosts"
    with pytest.raises(InjectionError, match=rf"host key for \[127\.0\.0\.1\]:{sshd.port} {expected}") as refused:
        injector.resolve("svc", Selection(name="svc-1"), ctx)
    assert isinstance(refused.value.__cause__, SshError)  # translated at the injector's edge, the cause kept
    plan = FaultPlan(
        kind="process.kill",
        target="svc",
        targets=[TargetRef(id="svc-1", detail={"pid": real.pid, "start_time": real.start_time})],
    )
    (result,) = injector.inject(plan, ctx)
    assert not result.ok and expected in (result.error or "")
    assert real.pid is not None and start_time_of(real.pid) == real.start_time
    assert sessions_started(sshd) == before  # no command ever reached the host


def test_a_key_the_host_does_not_know_is_refused(remote: LiveStack, sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    keygen(stranger)
    real = instance(remote, "svc-2")
    remote.replace_instance("svc", real.model_copy(update={"host": sshd.host(key_file=str(stranger))}))
    injector = ProcessPauseInjector(ProcessPauseSpec())
    before = sessions_started(sshd)
    with pytest.raises(InjectionError, match="refused key-based login") as refused:
        injector.resolve("svc", Selection(name="svc-2"), ctx_for(remote))
    assert isinstance(refused.value.__cause__, SshError)
    assert real.pid is not None and state_of(real.pid) not in (None, "T")
    assert sessions_started(sshd) == before


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("closed port", "cannot connect to"),
        ("no known_hosts file", "cannot read known_hosts file"),
        ("encrypted key, no passphrase", "is encrypted: set `key_passphrase_env`"),
        ("passphrase variable unset", "environment variable CHAOS_TEST_UNSET_PASS (passphrase of"),
    ],
)
def test_connection_problems_are_named_with_the_fix(sshd: Sshd, tmp_path: Path, case: str, message: str) -> None:
    locked = tmp_path / "locked_key"
    sshd.authorize(keygen(locked, passphrase="pass phrase"))
    host = {
        "closed port": sshd.host(port=free_port(), connect_timeout_s=2),
        "no known_hosts file": sshd.host(known_hosts=str(tmp_path / "missing")),
        "encrypted key, no passphrase": sshd.host(key_file=str(locked)),
        "passphrase variable unset": sshd.host(key_file=str(locked), key_passphrase_env="CHAOS_TEST_UNSET_PASS"),
    }[case]
    with pytest.raises(SshError, match=re.escape(message)) as raised:
        SshSession(host).connect()
    assert "pass phrase" not in str(raised.value)


def test_a_passphrase_variable_needs_a_key_file() -> None:
    with pytest.raises(ValueError, match="goes with `key_file`"):
        SshHost(address="127.0.0.1", user="chaos", key_passphrase_env="SSH_PASS")


def test_remote_commands_quote_every_argument(sshd: Sshd, tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    hostile = ["a b", f"$(touch {marker})", f"'; touch {marker}; '", "`id`", "*"]
    with SshSession(sshd.host()) as session:
        code, out, err = session.run(["printf", "%s\\n", *hostile])
        assert (code, err) == (0, "")
        assert out.splitlines() == hostile
        with pytest.raises(SshError, match=r"did not finish within 0\.3s"):
            session.run(["sleep", "5"], timeout_s=0.3)
        assert session.run(["true"])[0] == 0  # the connection survives a timed-out command
    assert not marker.exists()


def test_remote_restart_applies_cwd_env_and_log(
    sshd: Sshd, tmp_path: Path, started: Started, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOS_TEST_SECRET", "s3cret")
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    script = (
        "import os, sys, time; print(os.getcwd(), os.environ['ODD'], os.environ['TOKEN'], flush=True); time.sleep(60)"
    )
    inst = ProcessInstance(
        name="probe-1",
        argv=[sys.executable, "-c", script],
        cwd=str(workdir),
        env={"ODD": "it's $(not) `run`", "TOKEN": "${CHAOS_TEST_SECRET}"},
        log=str(tmp_path / "new logs" / "probe.log"),
        host=sshd.host(),
    )
    with SshSession(sshd.host()) as session:
        restarted = RemoteHost(session).spawn(inst)
    started.add(restarted)
    assert restarted.pid is not None and start_time_of(restarted.pid) == restarted.start_time
    log = Path(str(inst.log))
    wait_for = 100
    while wait_for and not (log.exists() and log.read_text()):
        wait_for -= 1
        time.sleep(0.05)
    assert log.read_text().strip() == f"{workdir} it's $(not) `run` s3cret"
    # The expanded secret went over stdin: it is in no command line there.
    assert b"s3cret" not in Path(f"/proc/{restarted.pid}/cmdline").read_bytes()
    assert restarted.env["TOKEN"] == "${CHAOS_TEST_SECRET}"


def test_chaos_run_kills_and_restarts_over_ssh(
    sshd: Sshd, tmp_path: Path, started: Started, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A passphrase-protected key, its passphrase only in the environment of the run.
    locked = tmp_path / "locked_key"
    sshd.authorize(keygen(locked, passphrase="open sesame"))
    monkeypatch.setenv("CHAOS_TEST_SSH_PASS", "open sesame")
    host = sshd.host(key_file=str(locked), key_passphrase_env="CHAOS_TEST_SSH_PASS")
    web = service(tmp_path, "web-1", "web", started, None)
    svc = [service(tmp_path, "svc-1", "leader", started, host), service(tmp_path, "svc-2", "follower", started, host)]
    world: dict[str, object] = {"web": web, "svc": svc, "tmp": tmp_path}
    runs = tmp_path / "runs"
    before = sessions_started(sshd)

    # A longer load than the local CLI tests: a kill and a restart over SSH, each with its own session and a
    # stability wait, took 15 s on a loaded machine and left the 11 s load's recovery window without samples.
    experiment = write_experiment(world, steady=OK_STEADY, load="25s")
    result = chaos("run", str(experiment), "--runs-dir", str(runs), "--seed", "3")
    journal_path = only_journal(runs)
    journal = load_journal(journal_path)
    for fault in journal.faults:
        for undone in fault.rollback:
            started.known[int(undone.detail["pid"])] = svc[0].argv
    assert result.returncode == ExitCode.PASSED, result.stdout + result.stderr
    (fault,) = journal.faults
    assert fault.status == "rolled_back" and [t.id for t in fault.inject] == ["svc-1"]
    assert fault.inject[0].detail["host"] == host.label and fault.inject[0].detail["pid"] == svc[0].pid
    assert fault.rollback[0].detail["restarted"] is True and fault.rollback[0].detail["host"] == host.label
    new_pid = int(fault.rollback[0].detail["pid"])
    assert new_pid != svc[0].pid and int(stat_fields(new_pid)[3]) == new_pid
    assert sessions_started(sshd) > before
    # Neither the passphrase nor the key itself is written anywhere the run leaves behind.
    secret_line = locked.read_text().splitlines()[1]
    for path in [journal_path, runs / LEDGER_FILE, tmp_path / "stack.json"]:
        text = path.read_text()
        assert "open sesame" not in text and secret_line not in text, path
