"""Plain HTTP for the control plane: explicit timeouts, JSON bodies, and never through a proxy.

Health checks, role lookups and the Toxiproxy API talk to the drilled services themselves: an
`http_proxy` in the environment must not route them elsewhere (or fail them when it is down).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """`https://user:pw@host/x` → (`https://host/x`, {"Authorization": "Basic ..."}); a URL without
    credentials comes back as it is. Credentials travel as a header, never as part of the URL."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=hostport)), {"Authorization": f"Basic {token}"}


def request(method: str, url: str, timeout_s: float, body: Any = None) -> tuple[int, bytes]:
    """Status and body of one request; HTTP error statuses are answers, not exceptions.

    Raises OSError (refused, reset, timed out) or ValueError (not an http(s) URL).
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    data = None if body is None else json.dumps(body).encode()
    url, headers = split_credentials(url)
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - scheme checked
    try:
        with _DIRECT.open(req, timeout=timeout_s) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def get(url: str, timeout_s: float) -> tuple[int, bytes]:
    return request("GET", url, timeout_s)
