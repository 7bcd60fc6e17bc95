"""The choices a Chaos Toolkit experiment does not make (stack, load, timeline), with their documented defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[1]
TRADING_LOCUSTFILE = REPO_ROOT / "loadgen" / "trading.py"
LIGHT_LOCUSTFILE = REPO_ROOT / "loadgen" / "http_get.py"
DEFAULT_STACK = "reference:basic"
MethodProbes = Literal["report", "judge"]


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert: everything Chaos Toolkit leaves open. Durations are in seconds.

    `endpoints` maps a URL prefix of the document (`http://localhost:8080`) to a stack endpoint name
    (`gateway`); `targets` maps what an activity names (its own name, a pkill pattern, a PID, a label
    selector) to a stack target (`matcher`, or `matcher/matcher-1` for one instance); `variables`
    override configuration keys like `chaos --var`; `subsumed_rollbacks` names rollbacks the user
    declares undone by the automatic rollbacks.
    """

    stack: str = DEFAULT_STACK
    locustfile: Path | None = None
    users: int | None = None
    duration_s: float | None = None
    warmup_s: float = 5.0
    baseline_s: float = 10.0
    recovery_s: float = 20.0
    min_fault_s: float = 10.0
    stable_for_s: float = 3.0
    probe_interval_s: float = 1.0
    load_host: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=dict)
    targets: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, Any] = field(default_factory=dict)
    subsumed_rollbacks: frozenset[str] = frozenset()
    method_probes: MethodProbes = "report"
    ignore_controls: bool = False
    out: Path | None = None
    environ: Mapping[str, str] | None = None

    def problems(self) -> list[str]:
        """What is wrong with the options themselves (each a sentence naming the option)."""
        found = []
        if self.baseline_s < 2:
            found.append("baseline must be at least 2s: the steady state is judged over it before any fault")
        if self.recovery_s < self.stable_for_s:
            found.append(
                f"recovery ({self.recovery_s:g}s) must be at least stable_for ({self.stable_for_s:g}s) "
                "so that recovery can be observed"
            )
        for name in ("warmup_s", "min_fault_s", "stable_for_s", "probe_interval_s"):
            value = getattr(self, name)
            if not value > 0 and not (name == "warmup_s" and value == 0):
                found.append(f"{name.removesuffix('_s')} must be more than 0")
        if self.users is not None and self.users < 1:
            found.append("users must be at least 1")
        if self.duration_s is not None and not self.duration_s > 0:
            found.append("duration must be more than 0")
        return found
