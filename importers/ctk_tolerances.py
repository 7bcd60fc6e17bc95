"""Chaos Toolkit HTTP probes and their tolerances → this framework's HTTP steady-state probes.

An HTTP probe here requests a URL (GET or HEAD, no headers, no body) and judges the answer by one expected
status code within a timeout. A tolerance maps only when it accepts exactly one status code, as Chaos Toolkit
judges it; anything else is refused — never mapped to something looser.
"""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

from engine.durations import format_duration
from importers.ctk_config import Values, resolve
from importers.ctk_document import Context, Loc
from importers.ctk_options import ConvertOptions
from importers.ctk_targets import StackInfo

DEFAULT_TIMEOUT_S = 1.0  # the engine's own default for an HTTP probe
_JUDGES = "an HTTP probe here judges the status code only (it never reads headers or the body)"


def _codes(values: set[int]) -> str:
    ordered = sorted(values)
    if len(ordered) > 4 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ", ".join(str(v) for v in ordered)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _range_codes(ctx: Context, loc: Loc, tolerance: dict[str, Any]) -> set[int] | None:
    target = tolerance.get("target")
    if target not in (None, "status"):
        ctx.refuse((*loc, "target"), f"a range on the response's {target!r} cannot be judged: {_JUDGES}")
        return None
    bounds = tolerance.get("range")
    if not isinstance(bounds, list) or len(bounds) != 2 or any(_number(b) is None for b in bounds):
        ctx.refuse((*loc, "range"), "a range tolerance needs `range: [LOWER, UPPER]`, two numbers")
        return None
    low, high = (float(b) for b in bounds)
    return set(range(max(100, math.ceil(low)), min(599, math.floor(high)) + 1))


def status_codes(ctx: Context, loc: Loc, tolerance: Any) -> set[int] | None:
    """The status codes a tolerance accepts for an HTTP probe, as Chaos Toolkit judges it; None when refused."""
    if isinstance(tolerance, bool):
        ctx.refuse(
            loc,
            "a boolean tolerance is compared with the whole HTTP response in Chaos Toolkit, so it can "
            "never be met; give the status code instead (e.g. 200)",
        )
        return None
    if isinstance(tolerance, int):
        return {tolerance}
    if isinstance(tolerance, float | str):
        ctx.refuse(
            loc,
            f"a {type(tolerance).__name__} tolerance is compared with the whole HTTP response in Chaos "
            "Toolkit and can never be met; give the status code as an integer",
        )
        return None
    if isinstance(tolerance, list):
        # A list is membership of the status for a response, even with two items (not a range).
        return {item for item in tolerance if isinstance(item, int) and not isinstance(item, bool)}
    if not isinstance(tolerance, dict):
        ctx.refuse(loc, "a tolerance must be a scalar, a list or a mapping with a `type`")
        return None
    kind = tolerance.get("type")
    if kind == "range":
        return _range_codes(ctx, loc, tolerance)
    if kind == "regex":
        what = f"the response's {tolerance['target']!r}" if tolerance.get("target") else "the response"
        ctx.refuse((*loc, "type"), f"a regex tolerance matches {what}: {_JUDGES}")
    elif kind == "jsonpath":
        ctx.refuse((*loc, "type"), f"a jsonpath tolerance looks into the response body: {_JUDGES}")
    elif kind == "probe":
        ctx.refuse(
            (*loc, "type"),
            "a probe tolerance runs another activity to judge the value, and imported activities are never run",
        )
    else:
        known = "probe, regex, jsonpath, range"
        ctx.refuse((*loc, "type"), f"unknown tolerance type {kind!r} (Chaos Toolkit knows {known})")
    return None


def expected_status(ctx: Context, loc: Loc, tolerance: Any, values: Values) -> int | None:
    """The one status code an HTTP probe must answer; refuses a tolerance that accepts none or several."""
    if isinstance(tolerance, str):
        tolerance, ok = resolve(ctx, loc, tolerance, values)  # Chaos Toolkit substitutes string tolerances
        if not ok:
            return None
    codes = status_codes(ctx, loc, tolerance)
    if codes is None:
        return None
    codes = {code for code in codes if 100 <= code <= 599}
    if not codes:
        ctx.refuse(loc, "no HTTP status code (100-599) can meet this tolerance")
        return None
    if len(codes) > 1:
        ctx.refuse(
            loc,
            f"accepts {len(codes)} status codes ({_codes(codes)}), but an HTTP probe here expects exactly one; "
            "no single code is equivalent (it would fail answers Chaos Toolkit accepts): give one status code",
        )
        return None
    (code,) = codes
    ctx.decide(loc, f"tolerance {tolerance!r} → status {code} (the answer's status code, as Chaos Toolkit compares it)")
    return code


def _timeout(ctx: Context, loc: Loc, value: Any) -> float | None:
    if value is None:
        ctx.decide(
            loc,
            f"no timeout (Chaos Toolkit waits as long as it takes): {format_duration(DEFAULT_TIMEOUT_S)} "
            "here, a slower answer is a failed sample (stricter)",
        )
        return DEFAULT_TIMEOUT_S
    if isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value):
        chosen = min(float(v) for v in value)
        ctx.decide(
            loc,
            f"timeout {value} (connect, read) → {format_duration(chosen)} for the whole answer, the "
            "shorter of the two (stricter: never waits longer than Chaos Toolkit would)",
        )
        return chosen
    number = _number(value)
    if number is None or number <= 0:
        ctx.refuse(loc, "timeout must be a number of seconds, or [connect, read]")
        return None
    return number


def _url(ctx: Context, loc: Loc, url: Any, options: ConvertOptions, stack: StackInfo) -> str | None:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        ctx.refuse(loc, f"{url!r} is not an http(s) URL")
        return None
    for prefix, name in options.endpoints.items():
        base = prefix.rstrip("/")
        if url == base or url.startswith((f"{base}/", f"{base}?")):
            if name not in stack.endpoints:
                known = ", ".join(sorted(stack.endpoints)) or "none"
                ctx.refuse(
                    loc, f"endpoint mapping {prefix}={name}: {stack.label} has no endpoint {name!r} (it has: {known})"
                )
                return None
            mapped = "{" + name + "}" + url[len(base) :]
            ctx.decide(loc, f"{url} → {mapped}: the stack's endpoint {name!r} (mapped by option)")
            return mapped
    if stack.reference is not None:
        ctx.decide(
            loc,
            f"{url} is used as written; the reference stack chooses its ports at start, so a URL of it "
            "needs an endpoint mapping (e.g. `--endpoint http://127.0.0.1:8080=gateway`)",
        )
    return url


def _query(url: str, arguments: Any) -> str:
    if isinstance(arguments, dict):
        pairs = [(k, v) for k, v in arguments.items() if v is not None]
        query = urllib.parse.urlencode(pairs, doseq=True)
    else:
        query = str(arguments)
    return f"{url}{'&' if '?' in url else '?'}{query}" if query else url


_IGNORED = ("secrets", "type", "url", "method", "headers", "arguments", "timeout", "verify_tls", "max_retries")


def http_check(
    ctx: Context, loc: Loc, provider: dict[str, Any], values: Values, options: ConvertOptions, stack: StackInfo
) -> dict[str, Any] | None:
    """The `http:` block (without its status) for a Chaos Toolkit http provider; None when refused."""
    resolved, ok = resolve(ctx, loc, {k: v for k, v in provider.items() if k != "secrets"}, values)
    if not ok:
        return None
    method = str(resolved.get("method", "GET")).upper()
    if method not in ("GET", "HEAD"):
        ctx.refuse(
            (*loc, "method"), f"an HTTP probe here sends GET or HEAD, not {method} (a probe must not change the system)"
        )
        return None
    if resolved.get("headers"):
        ctx.refuse(
            (*loc, "headers"),
            "an HTTP probe here sends no headers of its own; remove them (credentials go "
            "in the URL as user:password@, which is sent as an Authorization header)",
        )
        return None
    url = _url(ctx, (*loc, "url"), resolved.get("url"), options, stack)
    if url is None:
        return None
    arguments = resolved.get("arguments")
    if arguments:
        if method != "GET":
            ctx.refuse((*loc, "arguments"), "arguments of a HEAD request are sent as a body, which is not mapped")
            return None
        url = _query(url, arguments)
        ctx.decide((*loc, "arguments"), "sent as the query string, as Chaos Toolkit sends a GET's arguments")
    timeout = _timeout(ctx, (*loc, "timeout"), resolved.get("timeout"))
    if timeout is None:
        return None
    if resolved.get("verify_tls") is False and url.startswith("https://"):
        ctx.decide((*loc, "verify_tls"), "false: certificates are verified here all the same (stricter)")
    if resolved.get("max_retries"):
        ctx.decide((*loc, "max_retries"), "no retries here: a failed attempt is a failed sample (stricter)")
    for key in provider:
        if key not in _IGNORED:
            ctx.decide((*loc, key), "not an http provider key Chaos Toolkit reads; ignored as it ignores it")
    interval = options.probe_interval_s
    return {"url": url, "method": method, "timeout": format_duration(timeout), "interval": format_duration(interval)}
