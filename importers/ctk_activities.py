"""Chaos Toolkit activities (probes and actions, by reference or inline) → steady-state probes and timeline steps."""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

from importers.ctk_config import Values, resolve
from importers.ctk_document import Context, Loc, dotted
from importers.ctk_items import CheckItem, FaultItem, Item, ObserveItem, Step, UndoItem, WaitItem
from importers.ctk_options import ConvertOptions
from importers.ctk_process_faults import process_items
from importers.ctk_processes import parse_process
from importers.ctk_python import (
    IDLE_FOR,
    SCALE_DEPLOYMENT,
    TERMINATE_PODS,
    idle_for,
    read_only_probe,
    refuse_unmapped,
    scale_deployment,
    terminate_pods,
)
from importers.ctk_targets import StackInfo
from importers.ctk_tolerances import expected_status, http_check

PROVIDER_TYPES = ("python", "process", "http")
NO_PROGRAMS = "a process probe runs a program, and imported programs are never run"


def handle_controls(ctx: Context, loc: Loc, controls: Any, options: ConvertOptions) -> None:
    """Controls run code around the experiment; refused unless the user drops them knowingly."""
    names = [c.get("name") for c in controls if isinstance(c, dict)] if isinstance(controls, list) else []
    listed = ", ".join(repr(n) for n in names if n) or "unnamed"
    if options.ignore_controls:
        ctx.decide(loc, f"controls ({listed}) dropped by option --ignore-controls: not run")
        return
    ctx.refuse(
        loc,
        f"controls ({listed}) run code around the experiment (safeguards, notifications, tracing) and "
        "imported code is never executed; remove them, or drop them knowingly with --ignore-controls",
    )


class Activities:
    """Walks the activities of one document, resolving `ref`s the way Chaos Toolkit does (method, then the
    hypothesis' probes, a later name replacing an earlier one)."""

    def __init__(self, ctx: Context, values: Values, options: ConvertOptions, stack: StackInfo) -> None:
        self.ctx, self.values, self.options, self.stack = ctx, values, options, stack
        self.open_keys: set[str] = set()
        self.hypothesis_urls: dict[str, str] = {}  # url → probe name, to recognise method probes that repeat one
        self.hypothesis_names: set[str] = set()
        self.names: dict[str, tuple[Loc, dict[str, Any]]] = {}
        data = ctx.source.data
        method = data.get("method")
        hypothesis = data.get("steady-state-hypothesis")
        probes = hypothesis.get("probes") if isinstance(hypothesis, dict) else None
        for section, found in (("method", method), ("probes", probes)):
            entries: list[Any] = found if isinstance(found, list) else []
            prefix: Loc = ("method",) if section == "method" else ("steady-state-hypothesis", "probes")
            for index, activity in enumerate(entries):
                if isinstance(activity, dict) and isinstance(activity.get("name"), str):
                    self.names[activity["name"]] = ((*prefix, index), activity)

    def _resolve(self, loc: Loc, activity: Any) -> tuple[Loc, dict[str, Any]] | None:
        """The activity itself, or the one its `ref` names; validated as Chaos Toolkit validates an activity."""
        ctx = self.ctx
        if not isinstance(activity, dict) or not activity:
            ctx.refuse(loc, "an activity must be a non-empty mapping")
            return None
        if "ref" in activity:
            ref = activity["ref"]
            if not isinstance(ref, str) or ref not in self.names:
                ctx.refuse(
                    (*loc, "ref"),
                    f"referenced activity {ref!r} is not defined in the method or the "
                    f"hypothesis (defined: {', '.join(self.names) or 'none'})",
                )
                return None
            where, activity = self.names[ref]
            ctx.decide(loc, f"ref {ref!r}: the activity defined at {dotted(where)}")
            loc = where
        if activity.get("type") not in ("probe", "action"):
            kind = activity.get("type")
            ctx.refuse((*loc, "type"), f"activity type {kind!r}: an activity is a 'probe' or an 'action'")
            return None
        if not isinstance(activity.get("name"), str) or not activity["name"]:
            ctx.refuse((*loc, "name"), "an activity needs a name")
            return None
        provider = activity.get("provider")
        if not isinstance(provider, dict):
            ctx.refuse((*loc, "provider"), "an activity needs a provider (a mapping with a type)")
            return None
        if provider.get("type") not in PROVIDER_TYPES:
            ctx.refuse(
                (*loc, "provider", "type"),
                f"unknown provider type {provider.get('type')!r} (Chaos Toolkit knows python, process and http)",
            )
            return None
        if "controls" in activity:
            handle_controls(ctx, (*loc, "controls"), activity["controls"], self.options)
        if activity.get("dry"):
            ctx.refuse(
                (*loc, "dry"),
                "a dry activity is not run by Chaos Toolkit; remove it (a dry run of the whole "
                "experiment is `chaos.py run --dry-run`)",
            )
            return None
        return loc, activity

    def _pause(self, loc: Loc, pauses: dict[str, Any], key: str) -> float:
        raw = pauses.get(key)
        if raw is None:
            return 0.0
        value, ok = resolve(self.ctx, (*loc, "pauses", key), raw, self.values)
        if ok and isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        if ok:
            self.ctx.refuse((*loc, "pauses", key), f"a pause must be a number of seconds, got {value!r}")
        return 0.0

    def _step(self, loc: Loc, activity: dict[str, Any]) -> Step:
        pauses = activity.get("pauses") or {}
        if not isinstance(pauses, dict):
            self.ctx.refuse((*loc, "pauses"), "pauses must be a mapping with `before` and/or `after`")
            pauses = {}
        if "timeout" in activity:
            self.ctx.decide((*loc, "timeout"), "ignored: each fault kind bounds its own steps (its params' timeouts)")
        background = activity.get("background", False)
        if not isinstance(background, bool):
            self.ctx.refuse((*loc, "background"), "background must be true or false")
            background = False
        return Step(
            loc, activity["name"], self._pause(loc, pauses, "before"), self._pause(loc, pauses, "after"), background
        )

    def hypothesis_probe(self, loc: Loc, activity: Any) -> dict[str, Any] | None:
        """A steady-state probe for one probe of the hypothesis; None when refused."""
        found = self._resolve(loc, activity)
        if found is None:
            return None
        loc, activity = found
        ctx, provider = self.ctx, activity["provider"]
        if activity["type"] != "probe":
            ctx.refuse((*loc, "type"), "the hypothesis holds probes; an action here would change the system")
            return None
        if "tolerance" not in activity:
            ctx.refuse(loc, "a hypothesis probe needs a tolerance")
            return None
        if provider["type"] == "python":
            module, func = provider.get("module"), provider.get("func")
            reads = read_only_probe(str(module))
            if reads == "Prometheus":
                ctx.refuse(
                    (*loc, "provider", "module"),
                    f"{module}.{func}: Prometheus probes have no equivalent here "
                    "yet (a steady state is load metrics and HTTP probes), and imported code is never executed",
                )
            elif reads:
                ctx.refuse(
                    (*loc, "provider", "module"),
                    f"{module}.{func} reads Kubernetes state, which no steady-state probe here reads (pod.delete's "
                    "rollback verifies every replica ready); imported code is never executed",
                )
            else:
                refuse_unmapped(ctx, loc, str(module), str(func))
            return None
        if provider["type"] == "process":
            ctx.refuse((*loc, "provider", "type"), NO_PROGRAMS)
            return None
        check = http_check(ctx, (*loc, "provider"), provider, self.values, self.options, self.stack)
        status = expected_status(ctx, (*loc, "tolerance"), activity["tolerance"], self.values)
        for key in ("pauses", "background", "timeout"):
            if key in activity:
                ctx.decide((*loc, key), "ignored: a steady-state probe here is sampled every interval, in every phase")
        if check is None or status is None:
            return None
        self.hypothesis_urls[check["url"]] = activity["name"]
        self.hypothesis_names.add(activity["name"])
        ctx.decide(
            loc,
            f"HTTP probe → steady_state {activity['name']!r}: {check['method']} {check['url']} must "
            f"answer {status} within {check['timeout']}, sampled every {check['interval']}; every sample must "
            "pass over the baseline and the recovery (Chaos Toolkit: one call before and one after the method)",
        )
        return {"name": activity["name"], "http": {**check, "status": status}}

    def step(self, loc: Loc, activity: Any, rollback: bool) -> Step | None:
        """A timeline step for one activity of the method (or of the rollbacks); None when refused."""
        found = self._resolve(loc, activity)
        if found is None:
            return None
        where, activity = found  # where it is defined: a `ref` points elsewhere
        step = self._step(where, activity)
        step.loc = loc
        items = self._items(where, activity, rollback, loc)
        if items is None:
            return None
        step.items = items
        return step

    def _items(self, loc: Loc, activity: dict[str, Any], rollback: bool, used_at: Loc) -> list[Item] | None:
        name = activity["name"]
        if activity["type"] == "probe":
            return self._method_probe(loc, activity, used_at)
        if rollback and name in self.options.subsumed_rollbacks:
            self.ctx.decide(loc, "declared undone by the automatic rollbacks (option --subsumed-rollback): not run")
            return [ObserveItem("subsumed by option")]
        items = self._action(loc, activity, rollback)
        if items is None and rollback:
            self.ctx.refuse(
                loc,
                "if this rollback only undoes what the method's faults did (each is undone and verified "
                f"automatically), declare it with `--subsumed-rollback '{name}'`",
            )
        return items

    def _action(self, loc: Loc, activity: dict[str, Any], rollback: bool) -> list[Item] | None:
        ctx, provider, name = self.ctx, activity["provider"], activity["name"]
        if provider["type"] == "http":
            ctx.refuse(
                (*loc, "provider", "type"),
                "an HTTP action changes the system through a request this framework "
                "does not send; its faults are the kinds of docs/injectors.md",
            )
            return None
        arguments, ok = resolve(ctx, (*loc, "provider", "arguments"), provider.get("arguments"), self.values)
        if not ok:
            return None
        if provider["type"] == "process":
            path, ok = resolve(ctx, (*loc, "provider", "path"), provider.get("path"), self.values)
            if not ok:
                return None
            if not isinstance(path, str) or not path:
                ctx.refuse((*loc, "provider", "path"), "a process provider needs a path")
                return None
            inert = self._inert(loc, path, arguments)
            if inert is not None:
                return inert
            try:
                actions = parse_process(path, arguments)
            except ValueError as exc:
                ctx.refuse((*loc, "provider"), str(exc))
                return None
            return process_items(ctx, loc, name, actions, self.stack, self.options, rollback)
        return self._python(loc, name, provider, arguments if isinstance(arguments, dict) else {}, rollback)

    def _inert(self, loc: Loc, path: str, arguments: Any) -> list[Item] | None:
        """Programs that change nothing (echo, true) or only wait (sleep N): mapped without being run."""
        program = os.path.basename(path)
        try:
            words = shlex.split(arguments) if isinstance(arguments, str) else [str(a) for a in arguments or []]
        except (ValueError, TypeError):
            return None  # parse_process explains what is wrong with it
        if program in ("echo", "true", "printf") and not any(c in str(arguments) for c in "`$;|&<>"):
            self.ctx.decide((*loc, "provider"), f"{program} only prints: nothing to inject; not run")
            return [ObserveItem(program)]
        if program == "sleep" and len(words) == 1 and re.fullmatch(r"\d+(\.\d+)?s?", words[0]):
            seconds = float(words[0].removesuffix("s"))
            self.ctx.decide((*loc, "provider"), f"sleep {words[0]} only waits: {seconds:g}s pass on the timeline")
            return [WaitItem(seconds)]
        return None

    def _python(
        self, loc: Loc, name: str, provider: dict[str, Any], arguments: dict[str, Any], rollback: bool
    ) -> list[Item] | None:
        qualified = f"{provider.get('module')}.{provider.get('func')}"
        if qualified == TERMINATE_PODS and not rollback:
            return terminate_pods(self.ctx, loc, name, arguments, self.stack, self.options)
        if qualified == SCALE_DEPLOYMENT:
            items = scale_deployment(self.ctx, loc, name, arguments, self.stack, self.options, self.open_keys)
            for item in items or []:
                if isinstance(item, FaultItem):
                    self.open_keys |= item.undo_keys
            if rollback and items and not all(isinstance(i, UndoItem) for i in items):
                self.ctx.refuse(loc, "this rollback scales a Deployment the method did not scale")
                return None
            return items
        if qualified == IDLE_FOR:
            return idle_for(self.ctx, loc, arguments)
        refuse_unmapped(self.ctx, loc, str(provider.get("module")), str(provider.get("func")))
        return None

    def _method_probe(self, loc: Loc, activity: dict[str, Any], used_at: Loc) -> list[Item] | None:
        ctx, provider = self.ctx, activity["provider"]
        if loc[0] == "steady-state-hypothesis" and activity["name"] in self.hypothesis_names:
            ctx.decide(
                used_at,
                f"the method runs hypothesis probe {activity['name']!r} again: it is sampled through every "
                "fault window already; not added again",
            )
            return [ObserveItem("hypothesis probe")]
        if provider["type"] == "process":
            ctx.refuse((*loc, "provider", "type"), NO_PROGRAMS)
            return None
        if provider["type"] == "python":
            reads = read_only_probe(str(provider.get("module")))
            if reads is None:
                refuse_unmapped(ctx, loc, str(provider.get("module")), str(provider.get("func")))
                return None
            ctx.decide(
                loc,
                f"a {reads} probe in the method: Chaos Toolkit only records its output, which decides "
                "nothing; not run (imported code is never executed)",
            )
            return [ObserveItem(reads)]
        check = http_check(ctx, (*loc, "provider"), provider, self.values, self.options, self.stack)
        if check is None:
            return None
        same = self.hypothesis_urls.get(check["url"])
        if self.options.method_probes == "judge" and "tolerance" in activity and same is None:
            status = expected_status(ctx, (*loc, "tolerance"), activity["tolerance"], self.values)
            if status is None:
                return None
            ctx.decide(
                loc,
                "HTTP probe in the method → a steady-state probe judged over each fault window "
                "(option method_probes=judge): every sample in the window, and at baseline and recovery, must "
                f"answer {status} (stricter than Chaos Toolkit, which records one answer and judges nothing)",
            )
            probe = {"name": activity["name"], "http": {**check, "status": status}, "during": {"max": 0.0}}
            return [CheckItem(probe)]
        if same is not None:
            ctx.decide(
                loc,
                f"requests what steady-state probe {same!r} samples through every fault window already; "
                "not added again",
            )
        else:
            ctx.decide(
                loc,
                "an HTTP probe in the method: Chaos Toolkit records its answer and judges nothing with it; "
                "not added (option method_probes=judge adds it as a check over the fault windows)",
            )
        return [ObserveItem("http")]
