"""Helpers the reference-stack tests share: HTTP calls and the CLI, waiting, a seeded store, a description's shape."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from stackspec.targets import ContainerTarget, KubernetesTarget, StackDescription
from tradingstack.book import OrderBook
from tradingstack.orders import OrderRequest, Side
from tradingstack.processes import REPO_ROOT
from tradingstack.store import Store, connect

_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(method: str, url: str, body: object = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with _http.open(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def place(gateway: str, account: str, symbol: str, side: str, qty: int, price: float, **extra: Any) -> tuple[int, Any]:
    order = {"account": account, "symbol": symbol, "side": side, "qty": qty, "price": price, **extra}
    return call("POST", f"{gateway}/orders", order)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tradingstack", *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.05)
    return time.monotonic() - started


T = TypeVar("T")


def run_store(redis_server: tuple[str, int], body: Callable[[Store], Awaitable[T]]) -> T:
    """Run `body` against a flushed, seeded store."""

    async def main() -> T:
        store = Store(connect(redis_server[0]))
        try:
            await store.redis.flushall()
            assert await store.seed()
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def order_request(account: str, side: Side, qty: int, price: int, symbol: str = "600000") -> OrderRequest:
    return OrderRequest(account=account, symbol=symbol, side=side, qty=qty, price_cents=price)


async def place_order(store: Store, book: OrderBook, epoch: int, request: OrderRequest) -> dict[str, object]:
    """What the matcher does for one order: allocate an id, match, persist."""
    order_id = await store.next_order_id(epoch)
    fills = book.add(order_id, request.account, request.side, request.price_cents, request.qty)
    return await store.commit_order(epoch, order_id, request, fills, time.time())


def shape(description: StackDescription) -> dict[str, object]:
    """Target name → (kind, member names), and the endpoint names: what `describe` must match in a started stack."""
    targets: dict[str, tuple[str, list[str]]] = {}
    for name, target in description.targets.items():
        if isinstance(target, ContainerTarget):
            members = [m.name for m in target.containers]
        elif isinstance(target, KubernetesTarget):
            members = []
        else:
            members = [i.name for i in target.instances]
        targets[name] = (target.kind, members)
    return {"targets": targets, "endpoints": sorted(description.endpoints), "trading": description.trading}
