"""The one adapter through which injectors reach a Toxiproxy HTTP API (embedded server or real Toxiproxy).

Why not the toxiproxy-python client: it has no timeout on any call, keeps host and port as global
class state (one endpoint per process) and ignores 5xx answers. A chaos tool's control plane must
never hang while it breaks the network, must talk to each stack's own endpoint, and must notice
every failed call. So this module speaks the documented HTTP API directly, with a timeout on every
call, one client per endpoint, and every unexpected answer raised as a ToxiproxyError.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clients import http
from clients.errors import ClientError

Stream = Literal["upstream", "downstream"]


class ToxiproxyError(ClientError):
    """A Toxiproxy API call failed: unreachable, timed out, or answered with an unexpected status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Toxic(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    type: str
    stream: Stream = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, Any] = Field(default_factory=dict)


class Proxy(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[Toxic] = Field(default_factory=list)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class ToxiproxyClient:
    """A client for one Toxiproxy endpoint; every call gives up after `timeout_s`."""

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"ToxiproxyClient({self.url!r})"

    def _call(self, method: str, path: str, expect: tuple[int, ...], body: Any = None) -> Any:
        url = self.url + path
        try:
            status, raw = http.request(method, url, self.timeout_s, body)
        except (OSError, ValueError) as exc:
            raise ToxiproxyError(f"Toxiproxy at {self.url} unreachable ({method} {path}): {exc}") from exc
        if status not in expect:
            detail = raw.decode(errors="replace").strip()
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(json.loads(raw).get("error", detail))
            raise ToxiproxyError(f"Toxiproxy {method} {path} answered {status}: {detail[:300]}", status)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def version(self) -> str:
        answer = self._call("GET", "/version", (200,))
        if isinstance(answer, dict):
            return str(answer.get("version", answer))
        return str(answer).strip()

    def proxies(self) -> dict[str, Proxy]:
        answer = self._call("GET", "/proxies", (200,))
        return {name: self._proxy(value) for name, value in dict(answer or {}).items()}

    def proxy(self, name: str) -> Proxy:
        return self._proxy(self._call("GET", f"/proxies/{_quote(name)}", (200,)))

    def create_proxy(self, name: str, listen: str, upstream: str, enabled: bool = True) -> Proxy:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return self._proxy(self._call("POST", "/proxies", (200, 201), body))

    def populate(self, proxies: list[dict[str, Any]]) -> list[Proxy]:
        answer = self._call("POST", "/populate", (200, 201), proxies)
        return [self._proxy(p) for p in dict(answer or {}).get("proxies", [])]

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        return self._proxy(self._call("POST", f"/proxies/{_quote(name)}", (200,), {"enabled": enabled}))

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{_quote(name)}", (200, 204))

    def toxics(self, proxy: str) -> list[Toxic]:
        answer = self._call("GET", f"/proxies/{_quote(proxy)}/toxics", (200,))
        return [self._toxic(t) for t in list(answer or [])]

    def add_toxic(
        self,
        proxy: str,
        name: str,
        type_: str,
        attributes: dict[str, Any],
        stream: Stream = "downstream",
        toxicity: float = 1.0,
    ) -> Toxic:
        body = {"name": name, "type": type_, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        return self._toxic(self._call("POST", f"/proxies/{_quote(proxy)}/toxics", (200, 201), body))

    def remove_toxic(self, proxy: str, name: str) -> bool:
        """Remove a toxic; False when it was already gone (idempotent rollback)."""
        try:
            self._call("DELETE", f"/proxies/{_quote(proxy)}/toxics/{_quote(name)}", (200, 204))
        except ToxiproxyError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def reset(self) -> None:
        self._call("POST", "/reset", (200, 204))

    def _proxy(self, value: Any) -> Proxy:
        try:
            return Proxy.model_validate(value)
        except ValidationError as exc:
            raise ToxiproxyError(f"Toxiproxy at {self.url} sent an unexpected proxy: {exc}") from exc

    def _toxic(self, value: Any) -> Toxic:
        try:
            return Toxic.model_validate(value)
        except ValidationError as exc:
            raise ToxiproxyError(f"Toxiproxy at {self.url} sent an unexpected toxic: {exc}") from exc
