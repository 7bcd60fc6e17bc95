"""The parts of a converted experiment Chaos Toolkit has no word for: the load, the guards the timeline needs,
and the recovery-time objective that stands for Chaos Toolkit's hypothesis after the method."""

from __future__ import annotations

import ipaddress
import urllib.parse
from pathlib import Path
from typing import Any

from engine.durations import format_duration
from importers.ctk_document import Context, portable_path
from importers.ctk_options import LIGHT_LOCUSTFILE, TRADING_LOCUSTFILE, ConvertOptions
from importers.ctk_targets import StackInfo
from importers.ctk_timeline import Timeline


def _loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_section(
    ctx: Context,
    options: ConvertOptions,
    stack: StackInfo,
    probes: list[dict[str, Any]],
    base: Path,
    timeline: Timeline,
) -> dict[str, Any]:
    trading = stack.reference is not None
    locustfile = options.locustfile or (TRADING_LOCUSTFILE if trading else LIGHT_LOCUSTFILE)
    users = options.users or (10 if locustfile == TRADING_LOCUSTFILE else 2)
    host = options.load_host
    urls = [p["http"]["url"] for p in probes if "http" in p]
    if host is None and trading:
        host = "gateway"
    elif host is None and urls and urls[0].startswith("{"):
        host = urls[0][1 : urls[0].index("}")]
    elif host is None and urls and _loopback(urls[0]):
        host = urls[0]
    if host is None:
        ctx.refuse(
            (),
            "Chaos Toolkit has no load, and no load target can be chosen here (no loopback or endpoint "
            "URL in the hypothesis): give one with --load-host (a stack endpoint name or a loopback URL)",
        )
        host = "gateway"
    needed = timeline.last_end + options.recovery_s
    duration = options.duration_s or needed
    if duration < needed:
        ctx.refuse(
            (),
            f"--duration {format_duration(duration)} is too short: the faults end at "
            f"{format_duration(timeline.last_end)} and recovery needs {format_duration(options.recovery_s)}",
        )
    which = (
        "the trading load (loadgen/trading.py)"
        if locustfile == TRADING_LOCUSTFILE
        else (
            "light HTTP GETs of the load host's URL (loadgen/http_get.py)"
            if locustfile == LIGHT_LOCUSTFILE
            else f"the locustfile {locustfile}"
        )
    )
    ctx.decide(
        (),
        f"Chaos Toolkit drives no load: {which}, {users} user(s) on {host!r}, for "
        f"{format_duration(round(duration, 3))} (warmup {format_duration(options.warmup_s)}, baseline "
        f"{format_duration(options.baseline_s)}, recovery {format_duration(options.recovery_s)} after the last "
        "fault) — options --locustfile, --users, --load-host, --duration",
    )
    return {
        "locustfile": portable_path(Path(locustfile), base),
        "users": users,
        "spawn_rate": users,
        "duration": format_duration(round(duration, 3)),
        "warmup": format_duration(options.warmup_s),
        "host": host,
    }


def guards_section(ctx: Context, timeline: Timeline, method: list[dict[str, Any]]) -> dict[str, Any]:
    guards: dict[str, Any] = {}
    concurrent = timeline.max_concurrent()
    if concurrent > 1:
        guards["max_concurrent_faults"] = concurrent
        ctx.decide(
            ("method",),
            f"guards.max_concurrent_faults raised to {concurrent}: Chaos Toolkit keeps every "
            "action's effect in place until it is undone or the rollbacks begin, so these faults overlap",
        )
    counts = [s["select"]["count"] for s in method if (s.get("select") or {}).get("count")]
    percents = [s["select"]["percent"] for s in method if (s.get("select") or {}).get("percent")]
    if counts and max(counts) > 10:
        guards["max_targets_per_fault"] = max(counts)
        ctx.decide(("method",), f"guards.max_targets_per_fault raised to {max(counts)}, the experiment's own count")
    if percents and max(percents) > 50:
        guards["max_percent"] = max(percents)
        ctx.decide(("method",), f"guards.max_percent raised to {max(percents)}, the experiment's own percentage")
    return {"guards": guards} if guards else {}


def objectives_section(ctx: Context, timeline: Timeline, judged: bool, strategy: str) -> dict[str, Any]:
    if not judged or strategy == "before-method-only":
        ctx.decide(
            ("steady-state-hypothesis",),
            "no hypothesis is judged after the method, so no recovery-time "
            "objective is set (recovery is still measured and reported)",
        )
        return {}
    rto = timeline.after_check_s()
    ctx.decide(
        ("steady-state-hypothesis",),
        f"Chaos Toolkit judges the hypothesis again when the method ends, "
        f"{format_duration(round(rto, 3))} after the last injection, with the faults still in place → "
        f"objectives.rto {format_duration(round(rto, 3))} from each fault's start: the steady state must be "
        "back by then and hold until the fault ends; it is judged over the recovery phase too (stricter)",
    )
    return {"objectives": {"rto": format_duration(round(rto, 3)), "rto_from": "fault_start"}}
