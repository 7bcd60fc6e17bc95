"""The Toxiproxy 2.x HTTP API over a collection of proxies: same routes, JSON shapes and status codes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from chaosproxy.proxy import Proxy
from chaosproxy.toxics import ApiError, apply_update, parse_toxic

VERSION = "2.12.0-chaosproxy"  # the Toxiproxy API version spoken, and who speaks it

log = logging.getLogger("chaosproxy")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ProxyCollection:
    """Every proxy by name; changes are serialized so concurrent API calls never interleave."""

    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise ApiError("proxy not found", 404) from None

    async def add(self, body: Any) -> Proxy:
        name, listen, upstream, enabled = _proxy_fields(body)
        if name in self.proxies:
            raise ApiError("proxy already exists", 409)
        proxy = Proxy(name, listen, upstream)
        if enabled:
            await proxy.start()
        self.proxies[name] = proxy
        return proxy

    async def populate(self, body: Any) -> list[Proxy]:
        """Create or replace each listed proxy; one whose listen and upstream are unchanged is kept."""
        if not isinstance(body, list):
            raise ApiError("bad request body: expected a JSON array of proxies", 400)
        for entry in body:
            _proxy_fields(entry)  # refuse the whole request before changing anything
        done: list[Proxy] = []
        for entry in body:
            name, listen, upstream, enabled = _proxy_fields(entry)
            existing = self.proxies.get(name)
            if existing is not None and (existing.upstream != upstream or listen not in (existing.listen, "")):
                await self.remove(name)
                existing = None
            if existing is None:
                existing = await self.add(entry)
            elif enabled and not existing.enabled:
                await existing.start()
            elif not enabled and existing.enabled:
                await existing.stop()
            done.append(existing)
        return done

    async def update(self, proxy: Proxy, body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError("bad request body: expected a JSON object", 400)
        listen = _text(body, "listen", proxy.listen)
        upstream = _text(body, "upstream", proxy.upstream)
        enabled = body.get("enabled", proxy.enabled)
        if not isinstance(enabled, bool):
            raise ApiError("bad request body: enabled must be true or false", 400)
        moved = listen != proxy.listen or upstream != proxy.upstream
        if moved:
            Proxy(proxy.name, listen, upstream)  # validates both addresses before anything changes
        if moved or not enabled:
            await proxy.stop()
        if moved:
            proxy.listen, proxy.upstream = listen, upstream
        if enabled:
            await proxy.start()

    async def remove(self, name: str) -> None:
        proxy = self.get(name)
        await proxy.stop()
        del self.proxies[name]

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic (Toxiproxy's global undo)."""
        for proxy in self.proxies.values():
            proxy.reset_toxics()
            await proxy.start()

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.stop()


def _text(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise ApiError(f"bad request body: {key} must be a string", 400)
    return value


def _proxy_fields(body: Any) -> tuple[str, str, str, bool]:
    if not isinstance(body, dict):
        raise ApiError("bad request body: expected a JSON object", 400)
    name = _text(body, "name", "")
    upstream = _text(body, "upstream", "")
    listen = _text(body, "listen", "") or "127.0.0.1:0"
    enabled = body.get("enabled", True)
    if not name:
        raise ApiError("missing required field: name", 400)
    if not upstream:
        raise ApiError("missing required field: upstream", 400)
    if not isinstance(enabled, bool):
        raise ApiError("bad request body: enabled must be true or false", 400)
    Proxy(name, listen, upstream)  # validates both addresses
    return name, listen, upstream, enabled


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def _error(message: str, status: int) -> web.Response:
    return _json({"error": message, "status": status}, status)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw or b"{}")
    except ValueError as exc:
        raise ApiError(f"bad request body: {exc}", 400) from exc


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Like Toxiproxy: browsers are refused, so a web page cannot drive the API (cross-site requests).
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(status=403, text="User agent not allowed\n")
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.message, exc.status)
    except web.HTTPException as exc:
        return _error(exc.reason, exc.status)


class _Routes:
    """The API's handlers over one collection; changes hold its lock, reads do not."""

    def __init__(self, collection: ProxyCollection) -> None:
        self.collection = collection

    async def version(self, _: web.Request) -> web.Response:
        return _json({"version": VERSION})

    async def reset(self, _: web.Request) -> web.Response:
        async with self.collection.lock:
            await self.collection.reset()
        return web.Response(status=204)

    async def proxy_index(self, _: web.Request) -> web.Response:
        return _json({name: proxy.to_json() for name, proxy in self.collection.proxies.items()})

    async def proxy_create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        async with self.collection.lock:
            proxy = await self.collection.add(body)
        return _json(proxy.to_json(), 201)

    async def populate(self, request: web.Request) -> web.Response:
        body = await _body(request)
        async with self.collection.lock:
            proxies = await self.collection.populate(body)
        return _json({"proxies": [p.to_json() for p in proxies]}, 201)

    async def proxy_show(self, request: web.Request) -> web.Response:
        return _json(self.collection.get(request.match_info["proxy"]).to_json())

    async def proxy_update(self, request: web.Request) -> web.Response:
        body = await _body(request)
        async with self.collection.lock:
            proxy = self.collection.get(request.match_info["proxy"])
            await self.collection.update(proxy, body)
        return _json(proxy.to_json())

    async def proxy_delete(self, request: web.Request) -> web.Response:
        async with self.collection.lock:
            await self.collection.remove(request.match_info["proxy"])
        return web.Response(status=204)

    async def toxic_index(self, request: web.Request) -> web.Response:
        return _json([t.to_json() for t in self.collection.get(request.match_info["proxy"]).toxics])

    async def toxic_create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        async with self.collection.lock:
            proxy = self.collection.get(request.match_info["proxy"])
            toxic = parse_toxic(body)
            proxy.add_toxic(toxic)
        return _json(toxic.to_json())

    async def toxic_show(self, request: web.Request) -> web.Response:
        proxy = self.collection.get(request.match_info["proxy"])
        return _json(proxy.find_toxic(request.match_info["toxic"]).to_json())

    async def toxic_update(self, request: web.Request) -> web.Response:
        body = await _body(request)
        async with self.collection.lock:
            proxy = self.collection.get(request.match_info["proxy"])
            toxic = proxy.find_toxic(request.match_info["toxic"])
            before = toxic.toxicity
            apply_update(toxic, body)
            proxy.toxic_updated(toxic.name, toxicity_changed=toxic.toxicity != before)
        return _json(toxic.to_json())

    async def toxic_delete(self, request: web.Request) -> web.Response:
        async with self.collection.lock:
            self.collection.get(request.match_info["proxy"]).remove_toxic(request.match_info["toxic"])
        return web.Response(status=204)


def build_app(collection: ProxyCollection) -> web.Application:
    """The Toxiproxy API over `collection`: the same routes (POST and PATCH both update) as Toxiproxy 2.x."""
    app = web.Application(middlewares=[_errors])
    routes = _Routes(collection)
    app.router.add_get("/version", routes.version)
    app.router.add_post("/reset", routes.reset)
    app.router.add_get("/proxies", routes.proxy_index)
    app.router.add_post("/proxies", routes.proxy_create)
    app.router.add_post("/populate", routes.populate)
    app.router.add_get("/proxies/{proxy}", routes.proxy_show)
    app.router.add_route("POST", "/proxies/{proxy}", routes.proxy_update)
    app.router.add_route("PATCH", "/proxies/{proxy}", routes.proxy_update)
    app.router.add_delete("/proxies/{proxy}", routes.proxy_delete)
    app.router.add_get("/proxies/{proxy}/toxics", routes.toxic_index)
    app.router.add_post("/proxies/{proxy}/toxics", routes.toxic_create)
    app.router.add_get("/proxies/{proxy}/toxics/{toxic}", routes.toxic_show)
    app.router.add_route("POST", "/proxies/{proxy}/toxics/{toxic}", routes.toxic_update)
    app.router.add_route("PATCH", "/proxies/{proxy}/toxics/{toxic}", routes.toxic_update)
    app.router.add_delete("/proxies/{proxy}/toxics/{toxic}", routes.toxic_delete)
    return app
