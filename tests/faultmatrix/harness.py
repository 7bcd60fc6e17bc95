"""The fault matrix's machinery: for every injector kind and every way a run can end, the fault is verified gone.

Each kind runs on one of three stacks, each started for the module on first use: the real `ha` reference
stack (processes, Toxiproxy links, Redis, ZooKeeper); containers on a real engine (podman serving the
Docker API, tests/injectors/podman_engine.py) written as a stack description file; and a fake Kubernetes
API server in this process (tests/injectors/fake_kube.py, its Deployment controller running while a driver
is killed), fresh for every cell, also as a stack description file. Each cell runs the real engine (Runner
with its Rollbacks, UndoLedger and SignalGuard) in a driver process of its own (tests/faultmatrix/driver.py)
with a fake load, injects a real fault, ends the run one way — normally, with an exception raised inside
the run, SIGINT, SIGTERM, SIGKILL followed by `chaos.py recover`, its runs directory (a tmpfs) filling up
while the fault is in place, or `chaos.py recover` tried while the run is alive (refused; then SIGTERM) —
and then proves here, independently, that the fault is gone: the injector's `verify_gone` on the journaled
plan, and a direct check of the thing itself (its kind's checks in tests/faultmatrix/kinds/). Each cell's
outcome and rollback time go to a JSON file per test module; `python -m tests.faultmatrix.report` prints
them as the table in docs/reliability.md.
The cells are split over test modules by stack (tests/faultmatrix/test_*.py), so parallel test workers
share the matrix.

The kinds come from the injector registry; each one's scenario (stack, target, select, params, and the
direct checks of its effect) lives beside the others of its fault domain in tests/faultmatrix/kinds/<domain>.py.
Adding a kind: one entry in its domain's SCENARIOS; MODULES below says which test module runs it
(test_meta.py fails until every registered kind has a scenario and a module).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from clients.procs import role_of, spawn
from engine.context import EngineContext
from engine.errors import ExitCode
from engine.events import EventBus
from engine.journal import FaultRecord, load_journal
from engine.stack import LiveStack
from engine.undo import LEDGER_FILE, UndoLedger
from injectors.base import FaultPlan
from injectors.registry import all_kinds, get_injector
from stackspec.targets import ContainerInstance, ContainerTarget, HttpHealth, ProcessTarget, StackDescription
from tests.faultmatrix.checks import Live, http_get, proc_state
from tests.faultmatrix.kinds import Scenario, StackName, scenarios
from tests.faultmatrix.kinds.kube import WEB_REPLICAS
from tests.faultmatrix.kinds.redis import redis_whole
from tests.faultmatrix.kinds.zookeeper import zookeeper_quorum
from tests.faultmatrix.report import ENDINGS, results_path
from tests.injectors.fake_kube import FakeKube
from tests.injectors.podman_engine import PodmanEngine, podman_engine
from tests.injectors.support import NS, Web, targets_for
from tests.support.helpers import ROOT, chaos, require_programs
from tradingstack.launcher import stack_status, stop_stack

SCENARIOS: dict[str, Scenario] = scenarios()
# Which test module runs which kinds: the stack they need, and the prefixes of their names.
MODULES: dict[str, tuple[StackName, tuple[str, ...]]] = {
    "test_ha_links_processes": ("ha", ("process.", "network.", "host.")),
    "test_ha_middleware": ("ha", ("redis.", "zookeeper.")),
    "test_containers": ("containers", ("",)),
    "test_kube": ("kube", ("",)),
}

SIGNALS = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}
EXPECTED_VERDICT = {
    "normal": ("passed", ExitCode.PASSED),
    "exception": ("error", ExitCode.CANNOT_RUN),
    "sigint": ("interrupted", ExitCode.INTERRUPTED),
    "sigterm": ("interrupted", ExitCode.INTERRUPTED),
    "disk_full": ("aborted", ExitCode.DEVIATED),  # the run's own code; `chaos.py run` makes it exit 5
    "concurrent_recover": ("interrupted", ExitCode.INTERRUPTED),  # ended by SIGTERM once recover was refused
}
RUNS_TMPFS = "64m"  # the disk_full ending's runs directory: a tmpfs of its own, filled while the fault is in place
MIN_FREE_MB = "8"  # what the drivers' preflight asks of it (the real default, 64 MB, is for real runs)
INJECT_TIMEOUT_S = 60.0
END_TIMEOUT_S = 120.0
SETTLE_S = 20.0  # then the stack is repaired (restart, SIGCONT, Toxiproxy reset) and given as long again
# The fake cluster asks for a bearer token from this variable (`token_env`): the ledger, journal and stack file
# must never hold the token itself, and `chaos.py recover` must find the cluster with the variable alone.
KUBE_TOKEN_ENV = "CHAOS_MATRIX_KUBE_TOKEN"
KUBE_TOKEN = secrets.token_hex(16)


# -- the driver processes ------------------------------------------------------------------------


class Driver:
    """One `python -m tests.matrix_driver` process: JSON lines in on stdin, events out on stdout."""

    def __init__(self, log: Path) -> None:
        self.log = log
        with log.open("w") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.faultmatrix.driver"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=handle,
                text=True,
                env={**os.environ, KUBE_TOKEN_ENV: KUBE_TOKEN, "CHAOS_MIN_FREE_MB": MIN_FREE_MB},
            )
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name="matrix-driver-stdout", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self._lines.put(json.loads(line))
        self._lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, event: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:
                raise AssertionError(f"the driver exited ({self.proc.wait()}) before {event!r}:\n{self.tail()}")
            if item.get("event") == event:
                return item
        raise AssertionError(f"no {event!r} from the driver within {timeout_s:.0f}s:\n{self.tail()}")

    def wait(self, timeout_s: float) -> int:
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Drivers:
    """A driver started ahead of time (importing the engine takes a while), so each cell gets a fresh one."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._count = 0
        self._spare = self._new()

    def _new(self) -> Driver:
        self._count += 1
        return Driver(self._logs / f"driver-{self._count}.log")

    def take(self) -> Driver:
        driver, self._spare = self._spare, self._new()
        driver.expect("ready", 60)
        return driver

    def close(self) -> None:
        self._spare.kill()


# -- results -------------------------------------------------------------------------------------


class Results:
    """The matrix so far, rewritten to the results file after every cell."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cpus": os.cpu_count(),
            "stack_up_s": 0.0,
            "matrix_s": 0.0,
            "cells": [],
        }

    def stack_started(self, name: str, seconds: float) -> None:
        """A stack came up (not counted in the matrix's time)."""
        self.data["stack_up_s"] = round(self.data["stack_up_s"] + seconds, 1)
        self.data.setdefault("stacks_up_s", {})[name] = round(seconds, 1)

    @contextlib.contextmanager
    def cell(self, kind: str, ending: str, stack: str) -> Iterator[dict[str, Any]]:
        entry: dict[str, Any] = {"kind": kind, "ending": ending, "ok": False, "seconds": None, "error": None}
        entry["stack"] = stack
        started = time.monotonic()
        try:
            yield entry
            entry["ok"] = True
        except BaseException as exc:
            entry["error"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise
        finally:
            entry["wall_s"] = round(time.monotonic() - started, 2)  # the whole cell: settle, run, end, checks
            self.data["cells"].append(entry)
            self.data["matrix_s"] = round(sum(c.get("wall_s", 0.0) for c in self.data["cells"]), 1)
            self.path.write_text(json.dumps(self.data, indent=1) + "\n")


# -- the stacks ----------------------------------------------------------------------------------


class MatrixStack(Protocol):
    """A stack the cells run against."""

    def cell(self) -> dict[str, str]:
        """What the driver is told about the stack: `stack_dir` (the reference stack) or `stack_file`."""
        ...

    def prepare(self) -> None:
        """Before each cell: the stack is whole (fails if a previous cell left a fault it cannot repair)."""
        ...

    def live(self) -> Live:
        """The stack's description as it is now, for the direct checks."""
        ...


def whole_or_repaired(problem: Callable[[], str | None], repair: Callable[[], None], what: str) -> None:
    """Wait for `problem()` to be None; if it stays, repair once and wait again; else fail the cell."""
    for attempt in (1, 2):
        deadline = time.monotonic() + SETTLE_S
        while (reason := problem()) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if reason is None:
            return
        if attempt == 1:
            repair()
    pytest.fail(f"the {what} is not whole before this cell (a previous cell left a fault?): {reason}")


def stack_problem(stack_dir: Path) -> str | None:
    """None when the whole stack is as after `stack up`: every process healthy, every link clean, Redis
    replicated with the Sentinels agreeing, a ZooKeeper quorum with one leader, one matching-engine leader."""
    bad = [f"{row.instance}: {row.problem}" for row in stack_status(stack_dir) if not row.healthy]
    if bad:
        return "; ".join(bad)
    live = Live.read(stack_dir)
    try:
        redis_whole(live, FaultPlan(kind="settle", target="redis"))
        zookeeper_quorum(live, FaultPlan(kind="settle", target="zookeeper"))
    except Exception as exc:  # a node that does not answer is as unsettled as a wrong answer
        return f"{type(exc).__name__}: {exc}"
    roles = {i.name: role_of(i) for i in live.instances("matcher")}
    return None if list(roles.values()).count("leader") == 1 else f"matching engines' roles: {roles}"


def repair(stack_dir: Path) -> None:
    """Undo whatever a failed cell left behind, so the next cells start from a whole stack."""
    path = stack_dir / "state.json"
    live = Live.read(stack_dir)
    stack = LiveStack(live.state, path)
    for name, group in live.state.targets.items():
        if not isinstance(group, ProcessTarget):
            continue
        for instance in group.instances:
            state = proc_state(instance.pid, instance.start_time)
            if state == "T" and instance.pid is not None:
                os.kill(instance.pid, signal.SIGCONT)
            elif state is None:
                stack.replace_instance(name, spawn(instance))
    assert live.state.toxiproxy is not None
    request = urllib.request.Request(f"{live.state.toxiproxy.url}/reset", method="POST")
    with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=5):
        pass


class HaStack:
    """The real `ha` reference stack in `stack_dir`."""

    def __init__(self, stack_dir: Path) -> None:
        self.stack_dir = stack_dir

    def cell(self) -> dict[str, str]:
        return {"stack_dir": str(self.stack_dir)}

    def prepare(self) -> None:
        whole_or_repaired(lambda: stack_problem(self.stack_dir), lambda: repair(self.stack_dir), "stack")

    def live(self) -> Live:
        return Live.read(self.stack_dir)


class ContainerStack:
    """Containers on the podman engine as a stack description file: `web`, three busybox web services on
    the host network, each with an HTTP health URL on a free loopback port (tests/injectors/support.py's
    `Web`), and `netted`, one container on an engine network of its own — a host-network container has no
    network to disconnect."""

    def __init__(self, podman: PodmanEngine, path: Path) -> None:
        self.podman = podman
        self.path = path
        web = Web(podman, {"chaos.test": podman.prefix, "chaos.case": "fault-matrix"})
        network = podman.network("matrix")
        podman.run("netted", "exec sleep 86400", network=network)
        netted = ContainerInstance(name="netted", container=f"{podman.prefix}-netted")
        description = StackDescription(
            name="fault-matrix-containers",
            targets={"web": web.listed, "netted": ContainerTarget(engine_url=podman.url, containers=[netted])},
            market_hours=None,  # a lab stack: it never trades, so the runner's calendar never stops its runs
        )
        path.write_text(description.model_dump_json(indent=1) + "\n")
        # As created: each container's id and networks, which every cell must leave as they are.
        self.created = {
            i.name: (attrs["Id"], sorted(attrs["NetworkSettings"]["Networks"] or {}))
            for i in self.instances()
            for attrs in [podman.inspect(i.container or i.name)]
        }

    def instances(self) -> list[ContainerInstance]:
        return [i for g in self.live().state.targets.values() if isinstance(g, ContainerTarget) for i in g.containers]

    def cell(self) -> dict[str, str]:
        return {"stack_file": str(self.path)}

    def problem(self) -> str | None:
        for instance in self.instances():
            attrs = self.podman.inspect(instance.container or instance.name)
            state, networks = attrs["State"], sorted(attrs["NetworkSettings"]["Networks"] or {})
            if (attrs["Id"], networks) != self.created[instance.name]:
                return f"{instance.name}: {attrs['Id'][:12]} on {networks}, created as {self.created[instance.name]}"
            if not state["Running"] or state["Paused"]:
                return f"{instance.name} is {state['Status']}"
            if isinstance(instance.health, HttpHealth):
                try:
                    http_get(instance.health.http)
                except AssertionError as exc:
                    return str(exc)
        return None

    def repair(self) -> None:
        api = self.podman.client.api
        for instance in self.instances():
            attrs = self.podman.inspect(instance.container or instance.name)
            if attrs["State"]["Paused"]:
                api.unpause(attrs["Id"])
            elif not attrs["State"]["Running"]:
                api.start(attrs["Id"])
            for network in set(self.created[instance.name][1]) - set(attrs["NetworkSettings"]["Networks"] or {}):
                api.connect_container_to_network(attrs["Id"], network)

    def prepare(self) -> None:
        whole_or_repaired(self.problem, self.repair, "container stack")

    def live(self) -> Live:
        return Live.load(self.path)


class KubeStack:
    """A fake Kubernetes API server in this process, as a stack description file: four worker nodes and a
    Deployment `web` of WEB_REPLICAS pods (targets from tests/injectors/support.py). A fresh one for every
    cell, so a drained node has pods again; it lives on after the cell's driver is killed, its controller
    replacing deleted pods while `chaos.py recover` waits for them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fake: FakeKube | None = None

    def cell(self) -> dict[str, str]:
        return {"stack_file": str(self.path)}

    def prepare(self) -> None:
        self.close()
        self.fake = FakeKube(replace_delay_s=0.3, ready_delay_s=0.1, max_grace_s=0.5, token=KUBE_TOKEN).start()
        for i in range(4):
            self.fake.add_node(f"node-{i}", {"pool": "workers"})
        self.fake.add_deployment(NS, "web", WEB_REPLICAS, {"app": "web", "tier": "front"})
        targets = dict(targets_for(self.fake.url, token_env=KUBE_TOKEN_ENV))
        # A lab cluster: it never trades, so the runner's calendar never stops its runs.
        description = StackDescription(name="fault-matrix-kube", targets=targets, market_hours=None)
        self.path.write_text(description.model_dump_json(indent=1) + "\n")

    def live(self) -> Live:
        return Live.load(self.path)

    def close(self) -> None:
        if self.fake is not None:
            self.fake.stop()
            self.fake = None


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest) -> Results:
    """This module's cells, in a results file of its own (modules may run in parallel workers)."""
    return Results(results_path(request.module.__name__.rsplit(".", 1)[-1]))


@pytest.fixture(scope="module")
def ha_stack(tmp_path_factory: pytest.TempPathFactory, results: Results) -> Iterator[HaStack]:
    require_programs("redis-server", "java")
    stack_dir = tmp_path_factory.mktemp("matrix") / "stack"
    started = time.monotonic()
    up = chaos("stack", "up", "--profile", "ha", "--dir", str(stack_dir), timeout=180)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        results.stack_started("ha", time.monotonic() - started)
        yield HaStack(stack_dir)
    finally:
        stop_stack(stack_dir)  # in this process: by the PIDs state.json lists now, restarts included


@pytest.fixture(scope="module")
def containers_stack(tmp_path_factory: pytest.TempPathFactory, results: Results) -> Iterator[ContainerStack]:
    started = time.monotonic()
    with podman_engine() as podman:  # skips without an engine (fails under CI=true); removes what it made
        stack = ContainerStack(podman, tmp_path_factory.mktemp("matrix-containers") / "stack.json")
        results.stack_started("containers", time.monotonic() - started)
        yield stack


@pytest.fixture(scope="module")
def kube_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeStack]:
    stack = KubeStack(tmp_path_factory.mktemp("matrix-kube") / "stack.json")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(KUBE_TOKEN_ENV, KUBE_TOKEN)  # for `chaos.py recover` and the checks here
        try:
            yield stack
        finally:
            stack.close()


@pytest.fixture(scope="module")
def drivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drivers]:
    pool = Drivers(tmp_path_factory.mktemp("drivers"))
    yield pool
    pool.close()


# -- the matrix ----------------------------------------------------------------------------------


def rollback_seconds(record: FaultRecord) -> float:
    """From the first rollback action to the last verification, as journaled."""
    return round(max(r.finished_at for r in record.verify) - min(r.started_at for r in record.rollback), 3)


@contextlib.contextmanager
def runs_on_tmpfs(runs: Path, ending: str) -> Iterator[None]:
    """For the disk_full ending, the runs directory is a tmpfs of its own (a real ENOSPC when it fills)."""
    if ending != "disk_full":
        yield
        return
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the disk_full ending mounts a tmpfs: it needs root")
        pytest.skip("the disk_full ending mounts a tmpfs: it needs root")
    runs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={RUNS_TMPFS}", "tmpfs", str(runs)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; delete it to give the space back."""
    filler = directory / "filler.bin"
    chunk = b"\xff" * (1 << 20)
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(chunk)
            handle.flush()
    return filler


def recover_cleanly(ledger: UndoLedger) -> float:
    """`chaos.py recover` as an operator runs it: every pending fault undone and verified; its seconds."""
    started = time.monotonic()
    recovered = chaos("recover", "--runs-dir", str(ledger.path.parent), timeout=END_TIMEOUT_S)
    seconds = round(time.monotonic() - started, 3)
    assert recovered.returncode == ExitCode.PASSED, recovered.stdout + recovered.stderr
    assert "STILL IN PLACE" not in recovered.stdout, recovered.stdout
    assert ledger.pending() == []
    return seconds


def end_run(
    driver: Driver,
    ending: str,
    record: FaultRecord,
    run_dir: Path,
    ledger: UndoLedger,
    stack: MatrixStack,
    present: Callable[[], None],
) -> float:
    """End the run `ending`'s way and check the engine's own account of it; the rollback time in seconds."""
    if ending == "sigkill":
        os.kill(driver.proc.pid, signal.SIGKILL)
        assert driver.wait(30) == -signal.SIGKILL
        (pending,) = ledger.pending()  # the runner died with its fault in place: the ledger still lists it
        assert (pending.key, pending.plan) == (f"{run_dir.name}#1", record.plan)
        if "stack_file" in stack.cell():  # the ledger's copy (the fallback) names engine URL, api_url, token_env
            assert pending.stack == stack.live().state
        return recover_cleanly(ledger)
    filler: Path | None = None
    if ending == "exception":
        driver.send("raise")
    elif ending in SIGNALS:
        os.kill(driver.proc.pid, SIGNALS[ending])
    elif ending == "disk_full":
        filler = fill(ledger.path.parent)  # every write of the run fails from here on
    elif ending == "concurrent_recover":
        refused = chaos("recover", "--runs-dir", str(ledger.path.parent), timeout=END_TIMEOUT_S)
        assert refused.returncode == ExitCode.CANNOT_RUN, refused.stdout + refused.stderr
        assert "left alone, its run is alive" in refused.stdout, refused.stdout
        present()  # the live run's fault is still in effect: recover did not touch it
        assert [p.key for p in ledger.pending()] == [f"{run_dir.name}#1"]
        os.kill(driver.proc.pid, signal.SIGTERM)
    finished = driver.expect("finished", END_TIMEOUT_S)
    code = driver.wait(30)
    if filler is not None:
        assert finished["record_error"] and "full" in finished["record_error"], finished
        filler.unlink()
        # Rolled back and verified, though the ledger may not have been able to say so: recover checks again.
        recover_cleanly(ledger)
    journal = load_journal(run_dir / "journal.json")
    (fault,) = journal.faults
    assert fault.status == "rolled_back", f"{fault.status}: {fault.error}"
    assert fault.verify and all(r.ok for r in fault.rollback + fault.verify)
    assert (journal.verdict, code) == EXPECTED_VERDICT[ending], journal.summary
    assert finished["exit_code"] == code
    if ending == "exception":
        assert [e.type for e in journal.errors] == ["LoadFailedError"], journal.errors
    if ending in SIGNALS:
        assert finished["signals"] == [SIGNALS[ending].name]
    if ending == "disk_full":
        assert [e.type for e in journal.errors] == ["JournalWriteError"], journal.errors
    assert ledger.pending() == []  # crossed out once verified
    return rollback_seconds(fault)


def module_kinds(module: str) -> list[str]:
    """The registered kinds one test module runs: those with a scenario on its stack whose names start with a prefix."""
    stack, prefixes = MODULES[module.rsplit(".", 1)[-1]]
    return [k for k in all_kinds() if k in SCENARIOS and SCENARIOS[k].stack == stack and k.startswith(prefixes)]


def cells(module: str) -> list[Any]:
    """The (kind, ending) parameters of one test module (by its `__name__`), every kind with every ending."""
    kinds = module_kinds(module)
    return [pytest.param(kind, ending, id=f"{kind}-{ending}") for kind in kinds for ending in ENDINGS]


def run_cell(
    kind: str, ending: str, request: pytest.FixtureRequest, drivers: Drivers, results: Results, tmp_path: Path
) -> None:
    """One cell: inject `kind` for real, end the run `ending`'s way, and prove the fault gone."""
    scenario = SCENARIOS[kind]
    stack: MatrixStack = request.getfixturevalue(f"{scenario.stack}_stack")  # started on first use (or skipped)
    runs = tmp_path / "runs"
    run_dir = runs / f"{kind.replace('.', '-')}-{ending}"
    ledger = UndoLedger(runs / LEDGER_FILE)
    with results.cell(kind, ending, scenario.stack) as entry, runs_on_tmpfs(runs, ending):
        stack.prepare()
        driver = drivers.take()
        try:
            cell: dict[str, Any] = dict(kind=kind, ending=ending, target=scenario.target, select=scenario.select)
            params = scenario.params | (scenario.params_from(stack.live()) if scenario.params_from else {})
            cell |= dict(params=params, fault_s=scenario.fault_s, runs_dir=str(runs), run_dir=str(run_dir))
            driver.send(json.dumps(cell | stack.cell()))
            injected = driver.expect("injected", INJECT_TIMEOUT_S)
            assert injected["ok"], f"injection failed: {injected['error']}"
            record = load_journal(run_dir / "journal.json").faults[0]
            assert record.status == "injected" and record.plan is not None
            assert [p.key for p in ledger.pending()] == [f"{run_dir.name}#1"]  # on disk before the injection

            plan = record.plan

            def present() -> None:
                if scenario.present is not None:
                    scenario.present(stack.live(), plan)  # the fault is really in effect

            if ending != "normal":
                present()
            entry["seconds"] = end_run(driver, ending, record, run_dir, ledger, stack, present)
        finally:
            driver.kill()
        # Independently of the run: the injector's own verification from the journaled plan, here ...
        live = stack.live()
        injector_type = get_injector(kind)
        injector = injector_type(injector_type.parse_params(record.params))
        ctx = EngineContext("fault-matrix-check", LiveStack(live.state, None), seed=1, bus=EventBus())
        verified = injector.verify_gone(record.plan, ctx)
        assert verified and all(r.ok for r in verified), [r.error for r in verified]
        # ... and a direct look at the thing itself.
        scenario.gone(live, record.plan)
        # No credential was written down: the stack names the variable that holds the token, never the token.
        written = [p for p in [*runs.rglob("*"), *map(Path, stack.cell().values())] if p.is_file()]
        assert not [p.name for p in written if KUBE_TOKEN in p.read_text(errors="replace")]
