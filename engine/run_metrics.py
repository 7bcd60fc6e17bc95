"""The runner's own metrics: a loopback endpoint in Prometheus text format, fed by the run's events.

While a run runs (`chaos.py run --metrics-listen HOST:PORT`), a scraper sees the run's phase, each
fault while it is in place, and each steady-state probe as the live judge last found it — so a
dashboard can shade the fault windows beside the system's own metrics. The series live in a private
registry (never the process-wide one); the server is prometheus_client's WSGI server, stopped when
the run ends.

A probe's series is absent until the judge has judged a second (never "ok" before a sample); a fault
reads 1 from its injection until its rollback is verified, and stays 1 when a rollback fails.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, start_wsgi_server

from engine.errors import PreflightError
from engine.events import (
    Event,
    FaultInjected,
    FaultRolledBack,
    PhaseFinished,
    PhaseStarted,
    ProbeObserved,
    RunFinished,
    RunStarted,
)
from engine.journal import PhaseName

PHASES: tuple[str, ...] = get_args(PhaseName)
VERDICTS = ("passed", "deviated", "aborted", "interrupted", "failed")


class RunMetrics:
    """The run's series, kept up to date by `listen` (an event-bus listener).

    `probes` are the steady-state entries' names and `faults` the planned faults as (index, kind,
    target): every fault's series exists from the start at 0, every phase's too.
    """

    def __init__(self, probes: Iterable[str] = (), faults: Iterable[tuple[int, str, str]] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._info = Gauge("chaos_run_info", "The run in progress (always 1)", ["run_id", "experiment"], registry=reg)
        self._phase = Gauge(
            "chaos_run_phase", "1 for the run's current phase, 0 for the others", ["phase"], registry=reg
        )
        self._fault = Gauge(
            "chaos_fault_active",
            "1 while a fault is in place: from its injection until its rollback is verified",
            ["index", "kind", "target"],
            registry=reg,
        )
        self._injected = Counter("chaos_faults_injected", "Faults injected so far in this run", registry=reg)
        self._probe = Gauge(
            "chaos_steady_state_ok",
            "1 if the probe held in the latest judged second, 0 if not (absent until a second is judged)",
            ["probe"],
            registry=reg,
        )
        self._finished = Gauge("chaos_run_finished", "1 once the run has ended", registry=reg)
        self._verdict = Gauge(
            "chaos_run_verdict", "1 for the run's verdict once it has ended", ["verdict"], registry=reg
        )
        self._exit = Gauge("chaos_run_exit_code", "The run's exit code once it has ended (-1 before)", registry=reg)
        self._lock = threading.Lock()
        self._probes = list(probes)
        self._targets: dict[int, tuple[str, str]] = {}
        self._open: list[str] = []  # phases started and not finished, the current one last
        for index, kind, target in faults:
            self._targets[index] = (kind, target)
            self._fault.labels(str(index), kind, target).set(0)
        for phase in PHASES:
            self._phase.labels(phase).set(0)
        self._finished.set(0)
        self._exit.set(-1)

    def __call__(self, event: Event) -> None:
        self.listen(event)

    def listen(self, event: Event) -> None:
        """Bring the series up to date with one event; other events are ignored."""
        with self._lock:
            if isinstance(event, RunStarted):
                self._info.labels(event.run_id, event.title).set(1)
            elif isinstance(event, PhaseStarted | PhaseFinished):
                self._phase_event(event)
            elif isinstance(event, FaultInjected):
                self._targets[event.index] = (event.kind, event.target)
                if event.ok:
                    self._injected.inc()
                    self._fault.labels(str(event.index), event.kind, event.target).set(1)
            elif isinstance(event, FaultRolledBack):
                kind, target = self._targets.get(event.index, (event.kind, ""))
                if event.ok and event.verified:
                    self._fault.labels(str(event.index), kind, target).set(0)
            elif isinstance(event, ProbeObserved):
                self._probe_event(event)
            elif isinstance(event, RunFinished):
                self._finished.set(1)
                self._exit.set(event.exit_code)
                for verdict in {*VERDICTS, event.verdict}:
                    self._verdict.labels(verdict).set(1 if verdict == event.verdict else 0)

    def _phase_event(self, event: PhaseStarted | PhaseFinished) -> None:
        if event.phase in self._open:
            self._open.remove(event.phase)
        if isinstance(event, PhaseStarted):
            self._open.append(event.phase)
        current = self._open[-1] if self._open else None
        for phase in {*PHASES, event.phase}:
            self._phase.labels(phase).set(1 if phase == current else 0)

    def _probe_event(self, event: ProbeObserved) -> None:
        # A probe listed with a remark ("NAME (not checked)": it could not be read) did not hold either; a second
        # in which no request completed fails them all: none of them can be said to hold.
        failed = {_probe_named(entry, self._probes) for entry in event.failing}
        per_probe = event.ok or bool(failed - {None})
        for name in self._probes:
            self._probe.labels(name).set(1 if per_probe and name not in failed else 0)


def _probe_named(entry: str, probes: list[str]) -> str | None:
    """The probe a failing-list entry is about: its name, or its name followed by a remark in parentheses."""
    for name in probes:
        if entry == name or entry.startswith(name + " ("):
            return name
    return None


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the endpoint on this machine."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def format_address(host: str, port: int) -> str:
    """HOST:PORT, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class MetricsServer:
    """The endpoint, bound at once (a port in use is a PreflightError: exit 4, nothing started)."""

    def __init__(self, metrics: RunMetrics, host: str, port: int) -> None:
        self.metrics = metrics
        try:
            self._server, self._thread = start_wsgi_server(port, host.strip("[]"), metrics.registry)
        except OSError as exc:
            wanted = format_address(host, port)
            raise PreflightError(
                f"--metrics-listen {wanted}: cannot listen there ({exc.strerror or exc}); choose another port, "
                "or 0 for any free one; nothing was started or injected"
            ) from None
        self._closed = False
        bound = self._server.server_address
        self.address = format_address(str(bound[0]), int(bound[1]))

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
