"""A small gateway for Locust tests: the order API of docs/contracts.md with deliberate faults.

Run as a script; it binds 127.0.0.1 on a free port and prints ``PORT <n>`` on its first line.
``--fail-every N`` answers every Nth POST /orders with 503; ``--slow-ms M`` delays every
GET /accounts/{id} by M ms. ``GET /_acknowledged`` answers what it acknowledged so far:
``{"orders": [the body of every 201, as sent], "cancels": [the order_id of every 200 on DELETE]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import socket
from typing import Any

from aiohttp import web

ACCOUNTS = {f"ACC{i:04d}" for i in range(1, 101)}
SYMBOLS = {"600000", "600036", "601318", "000001", "000002"}


class Gateway:
    """In-memory orders; an order fills at once with probability ``fill_ratio``."""

    def __init__(self, fail_every: int, slow_ms: int, fill_ratio: float = 0.3) -> None:
        self.fail_every = fail_every
        self.slow_s = slow_ms / 1000
        self.fill_ratio = fill_ratio
        self.posts = itertools.count(1)
        self.ids = itertools.count(1)
        self.orders: dict[str, dict[str, Any]] = {}
        self.acked: list[dict[str, Any]] = []  # every 201 body, as sent
        self.cancels: list[str] = []  # every order_id a DELETE answered 200 for

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/orders", self.place)
        app.router.add_delete("/orders/{order_id}", self.cancel)
        app.router.add_get("/orders/{order_id}", self.order)
        app.router.add_get("/accounts/{account}", self.account)
        app.router.add_get("/health", self.health)
        app.router.add_get("/_acknowledged", self.acknowledged)
        return app

    async def place(self, request: web.Request) -> web.Response:
        if self.fail_every and next(self.posts) % self.fail_every == 0:
            return web.json_response({"error": "no matching-engine leader reachable"}, status=503)
        body = await request.json()
        if body.get("account") not in ACCOUNTS or body.get("symbol") not in SYMBOLS:
            return web.json_response({"error": "unknown account or symbol"}, status=404)
        qty, price = body.get("qty"), body.get("price")
        if (
            body.get("side") not in ("buy", "sell")
            or not isinstance(qty, int)
            or qty <= 0
            or qty % 100
            or not isinstance(price, int | float)
            or price <= 0
            or round(price, 2) != price
        ):
            return web.json_response({"error": f"invalid order {body}"}, status=400)
        filled = random.random() < self.fill_ratio
        order_id = f"O{next(self.ids)}"
        order = {
            "order_id": order_id,
            "client_order_id": body.get("client_order_id"),
            "account": body["account"],
            "symbol": body["symbol"],
            "side": body["side"],
            "qty": qty,
            "price": price,
            "filled_qty": qty if filled else 0,
            "status": "filled" if filled else "new",
            "ack_at": 0.0,
            "fills": [],
        }
        self.orders[order_id] = order
        self.acked.append(dict(order))
        return web.json_response(order, status=201)

    async def cancel(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["order_id"])
        if order is None:
            return web.json_response({"error": "unknown order"}, status=404)
        if order["status"] in ("filled", "cancelled"):
            return web.json_response({"error": f"order is {order['status']}"}, status=409)
        order["status"] = "cancelled"
        self.cancels.append(order["order_id"])
        return web.json_response(order)

    async def order(self, request: web.Request) -> web.Response:
        order = self.orders.get(request.match_info["order_id"])
        if order is None:
            return web.json_response({"error": "unknown order"}, status=404)
        if order["status"] == "new" and random.random() < self.fill_ratio:
            order["status"], order["filled_qty"] = "filled", order["qty"]
        return web.json_response(order)

    async def account(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.slow_s)
        account = request.match_info["account"]
        if account not in ACCOUNTS:
            return web.json_response({"error": "unknown account"}, status=404)
        return web.json_response({"account": account, "cash": 1_000_000.0, "positions": {}})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "leader": "fake"})

    async def acknowledged(self, request: web.Request) -> web.Response:
        return web.json_response({"orders": self.acked, "cancels": self.cancels})


async def serve(gateway: Gateway) -> None:
    runner = web.AppRunner(gateway.app(), access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fail-every", type=int, default=10)
    parser.add_argument("--slow-ms", type=int, default=20)
    args = parser.parse_args(argv)
    asyncio.run(serve(Gateway(args.fail_every, args.slow_ms)))


if __name__ == "__main__":
    main()
