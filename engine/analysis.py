"""After the load: the steady-state series, checks per fault window and recovery, recovery figures, objectives.

The verdict (`decide`) lives in engine.verdict and is re-exported here for the runner.
"""

from __future__ import annotations

import math

from engine.journal import FaultRecord, Journal, ObjectiveRecord, Status, SteadyPoint
from engine.metrics import MetricStore
from engine.model import Experiment
from engine.probes import Sampler, judge, second_failures
from engine.prom_probe import PromSampler
from engine.recovery import measure
from engine.verdict import decide

__all__ = ["analyse", "decide", "fault_windows", "rto_objective", "steady_series"]

Window = tuple[int, float, float]  # fault index, injected at, ended at


def fault_windows(journal: Journal, load_end: float) -> list[Window]:
    """Every injected fault's window: injection until its rollback was verified (or the load's end)."""
    return [(f.index, f.injected_at, f.ended_at or load_end) for f in journal.faults if f.injected_at is not None]


def steady_series(
    experiment: Experiment,
    store: MetricStore,
    samplers: dict[str, Sampler],
    start: float,
    end: float,
    windows: list[Window] | None = None,
) -> list[SteadyPoint]:
    """One point per whole second: the steady verdict and, inside a fault window, the in-window one."""
    probes = list(experiment.steady_state)
    points = []
    for second in range(math.ceil(start), math.floor(end)):
        failing = second_failures(probes, second, store, samplers)
        overlapping = [(i, at, until) for i, at, until in windows or [] if second < until and second + 1 > at]
        untolerated = second_failures(probes, second, store, samplers, in_window=True) if overlapping else []
        points.append(
            SteadyPoint(
                t=float(second),
                ok=not failing,
                failing=failing,
                tolerated=(not untolerated) if overlapping else None,
                untolerated=untolerated,
                straddles=[i for i, at, _ in overlapping if second < at],
            )
        )
    return points


def rto_objective(fault: FaultRecord, experiment: Experiment) -> ObjectiveRecord | None:
    """The rto objective of one fault, judged on the figure `objectives.rto_from` names."""
    target = experiment.objectives.rto
    if target is None or fault.recovery is None:
        return None
    rec = fault.recovery
    basis = "from the fault's start" if rec.rto_from == "fault_start" else "from the fault's end"
    # Not recovered is a measurement too: observed until the end, the steady state did not hold again.
    status: Status = "held" if rec.rto_s is not None and rec.rto_s <= target else "failed"
    return ObjectiveRecord(
        name="rto",
        target=target,
        observed=rec.rto_s,
        unit="s",
        status=status,
        fault_index=fault.index,
        detail=f"{basis} (objectives.rto_from: {rec.rto_from}); {rec.detail}",
    )


def analyse(
    journal: Journal,
    experiment: Experiment,
    store: MetricStore,
    samplers: dict[str, Sampler],
    load_start: float,
    load_end: float,
) -> None:
    """Fill in the journal's steady series, during/recovery checks, recovery records and objectives."""
    windows = fault_windows(journal, load_end)
    journal.metrics = store.series(load_start, load_end)
    journal.steady = steady_series(experiment, store, samplers, load_start, load_end, windows)
    journal.probes = {n: s.series(load_start, load_end) for n, s in samplers.items() if isinstance(s, PromSampler)}
    stable_for = experiment.recovery.stable_for
    injected = [f for f in journal.faults if f.injected_at is not None]
    for fault in injected:
        assert fault.injected_at is not None
        end = fault.ended_at or load_end
        for probe in experiment.steady_state:
            check = judge(probe, "during", (fault.injected_at, end), store, samplers, fault.index)
            if check is not None:
                journal.checks.append(check)
        fault.recovery = measure(
            journal.steady,
            fault.injected_at,
            end,
            load_end,
            stable_for,
            rto_from=experiment.objectives.rto_from,
            ended=fault.ended_at is not None and fault.status == "rolled_back",  # verified gone
        )
        objective = rto_objective(fault, experiment)
        if objective is not None:
            journal.objectives.append(objective)
    if injected and journal.verdict != "interrupted":
        ends = [f.ended_at or load_end for f in injected]
        ends += [f.recovery.recovered_at for f in injected if f.recovery and f.recovery.recovered_at]
        window = (max(ends), load_end)
        for probe in experiment.steady_state:
            recovery_check = judge(probe, "recovery", window, store, samplers)
            if recovery_check is not None:
                journal.checks.append(recovery_check)
