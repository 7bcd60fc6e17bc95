"""Instant queries against a Prometheus-compatible HTTP API (`GET /api/v1/query`), one scalar each.

Every way a query can fail to give one number is a PromQueryError whose message says why, so that a
sample becomes "not checked" with that reason and never a value of 0. The bearer token travels only in
the Authorization header: it is never part of a URL or a message.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from clients.http import split_credentials

__all__ = ["PromQueryError", "instant_query"]

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_MAX_BODY = 1 << 20  # an instant query for one scalar is small; a huge answer is a query that matched too much


class PromQueryError(Exception):
    """A query that gave no single number. `kind`: 'query' when Prometheus refused the query itself (bad_data),
    'result' when it answered with no series, several or a non-number, 'server' for anything else (unreachable,
    a timeout, a non-2xx answer, an error body)."""

    def __init__(self, message: str, kind: str = "server") -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def bad_query(self) -> bool:
        return self.kind == "query"


def _labels(metric: Any) -> str:
    if not isinstance(metric, dict):
        return "{}"
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def _number(pair: Any) -> float:
    if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str)):
        raise PromQueryError(f"unexpected sample in the answer: {str(pair)[:80]}", "result")
    try:
        value = float(pair[1])
    except ValueError:
        raise PromQueryError(f"the sample value {pair[1][:40]!r} is not a number", "result") from None
    if not math.isfinite(value):
        raise PromQueryError(f"the query returned {pair[1]}, not a finite number", "result")
    return value


def scalar(answer: Any) -> float:
    """The one number in a decoded query answer; PromQueryError for an error body, no series, several."""
    if not isinstance(answer, dict):
        raise PromQueryError("the answer is not a Prometheus API object")
    if answer.get("status") != "success":
        kind, why = answer.get("errorType", "error"), answer.get("error", "no message")
        raise PromQueryError(f"Prometheus answered {kind}: {why}", "query" if kind == "bad_data" else "server")
    data = answer.get("data")
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if kind == "scalar":
        return _number(result)
    if kind != "vector" or not isinstance(result, list):
        raise PromQueryError(
            f"the query returned a {kind or 'malformed'} result; one number (vector or scalar) is meant", "result"
        )
    if not result:
        raise PromQueryError("the query returned no series", "result")
    if len(result) > 1:
        shown = ", ".join(_labels(s.get("metric") if isinstance(s, dict) else None) for s in result[:3])
        more = f" and {len(result) - 3} more" if len(result) > 3 else ""
        raise PromQueryError(f"the query returned {len(result)} series where one is meant: {shown}{more}", "result")
    series = result[0]
    return _number(series.get("value") if isinstance(series, dict) else None)


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def instant_query(base_url: str, query: str, timeout_s: float, token: str | None = None) -> float:
    """The value of `query` now at the Prometheus under `base_url`; raises PromQueryError naming why not."""
    if not base_url.startswith(("http://", "https://")):
        raise PromQueryError(f"not an http(s) URL: {base_url!r}")
    url, headers = split_credentials(base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    headers["Accept"] = "application/json"
    req = urllib.request.Request(url, method="GET", headers=headers)  # noqa: S310 - scheme checked
    try:
        with _DIRECT.open(req, timeout=timeout_s) as resp:
            status, body = int(resp.status), resp.read(_MAX_BODY)
    except urllib.error.HTTPError as exc:
        with exc:
            status, body = exc.code, exc.read(_MAX_BODY)
    except TimeoutError:
        raise PromQueryError(f"no answer within {timeout_s:g}s") from None
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise PromQueryError(f"no answer within {timeout_s:g}s") from None
        raise PromQueryError(f"cannot reach Prometheus: {reason}") from None
    answer = _decode(body)
    if not 200 <= status < 300:
        if isinstance(answer, dict) and answer.get("status") == "error":
            scalar(answer)  # raises with Prometheus's own error message
        text = body[:200].decode("utf-8", "replace").strip()
        raise PromQueryError(f"HTTP {status}" + (f": {text}" if text else ""))
    if answer is None:
        raise PromQueryError("the answer is not JSON")
    return scalar(answer)
