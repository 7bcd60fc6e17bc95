"""Plain HTTP for the control plane: explicit timeouts, JSON bodies, and never through a proxy.

Health checks, role lookups and the Toxiproxy API talk to the drilled services themselves: an
`http_proxy` in the environment must not route them elsewhere (or fail them when it is down).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def request(method: str, url: str, timeout_s: float, body: Any = None) -> tuple[int, bytes]:
    """Status and body of one request; HTTP error statuses are answers, not exceptions.

    Raises OSError (refused, reset, timed out) or ValueError (not an http(s) URL).
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - scheme checked
    try:
        with _DIRECT.open(req, timeout=timeout_s) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def get(url: str, timeout_s: float) -> tuple[int, bytes]:
    return request("GET", url, timeout_s)
