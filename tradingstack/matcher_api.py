"""The matching engine's HTTP API: internal order entry and cancel (from the gateway), `/status` and `/health`.

It knows the engine only by type: `python -m tradingstack.matcher` runs that module as `__main__`, and an
import of it from here would load a second copy whose exception classes the running engine never raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from tradingstack.book import BookError
from tradingstack.metrics import add_route
from tradingstack.orders import OrderRejected, parse_internal, parse_order_id
from tradingstack.service import error, read_json
from tradingstack.store import OrderClosedError, StoreError, StoreUnavailableError, UnknownOrderError

if TYPE_CHECKING:
    from tradingstack.matcher import MatchingEngine


class NotLeaderError(Exception):
    """This matcher does not (or no longer) lead; the gateway should ask the leader (503)."""


def _store_failure(exc: Exception) -> web.Response:
    if isinstance(exc, NotLeaderError):
        return error(503, "not leader", detail=str(exc))
    if isinstance(exc, StoreUnavailableError | BookError):
        return error(503, f"order not acknowledged: {exc}")
    return error(500, f"order not acknowledged: {exc}")


def build_app(engine: MatchingEngine) -> web.Application:
    async def place(request: web.Request) -> web.Response:
        try:
            order_request = parse_internal(await read_json(request))
            return web.json_response(await engine.place(order_request), status=201)
        except OrderRejected as exc:
            return error(exc.status, str(exc))
        except (NotLeaderError, StoreError, BookError) as exc:
            return _store_failure(exc)

    async def cancel(request: web.Request) -> web.Response:
        order_id = parse_order_id(request.match_info["order_id"])
        if order_id is None:
            return error(404, f"unknown order {request.match_info['order_id']!r}")
        try:
            return web.json_response(await engine.cancel(order_id))
        except UnknownOrderError as exc:
            return error(404, str(exc))
        except OrderClosedError as exc:
            return error(409, str(exc))
        except (NotLeaderError, StoreError, BookError) as exc:
            return _store_failure(exc)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": engine.name,
                "role": engine.role,
                "role_for_s": round(engine.role_for_s(), 3),
                "epoch": engine.epoch,
                "accepting": engine.accepting,
            }
        )

    async def health(request: web.Request) -> web.Response:
        reason = engine.problem()
        if reason is not None:
            return web.json_response({"status": "degraded", "reason": reason, "role": engine.role}, status=503)
        return web.json_response({"status": "ok", "role": engine.role})

    app = web.Application()
    app.router.add_post("/internal/orders", place)
    app.router.add_delete("/internal/orders/{order_id}", cancel)
    app.router.add_get("/status", status)
    app.router.add_get("/health", health)
    add_route(app, engine.metrics.registry)
    return app
