"""A tiny real order service over HTTP on loopback, for the integrity tests of "a system of your own".

`POST /orders` stores a JSON order and answers 201 `{"id": ..., **order}`; `GET /orders/{id}` answers
200 with it or 404; `DELETE /orders/{id}` cancels (removes) it, 200. What a test can tell it, in
process: `lose(ids)` forgets orders (as a crash before persisting would), `stall(ids, s)` makes lookups of
those ids answer only after `s` seconds, `fail(ids, status)` answers them with another status, `alter(id,
field, value)` changes a stored field. `lookups` counts GET requests per id; `in_flight_max` is the most
GETs it served at once. Run it as a program (`python tests/support/order_service.py`) to print `PORT n`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STALL_CAP_S = 30.0  # a stalled answer never holds a thread longer than this


@dataclass
class OrderService:
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    stalled: dict[str, float] = field(default_factory=dict)
    failing: dict[str, int] = field(default_factory=dict)
    lookups: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    in_flight_max: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))
    url: str = ""

    def add(self, order: dict[str, Any]) -> str:
        with self.lock:
            order_id = f"ord-{next(self.ids)}"
            self.orders[order_id] = {"id": order_id, **order}
            return order_id

    def lose(self, ids: Iterable[str]) -> None:
        with self.lock:
            for order_id in ids:
                self.orders.pop(order_id, None)

    def stall(self, ids: Iterable[str], seconds: float) -> None:
        self.stalled.update(dict.fromkeys(ids, min(seconds, STALL_CAP_S)))

    def fail(self, ids: Iterable[str], status: int) -> None:
        self.failing.update(dict.fromkeys(ids, status))

    def alter(self, order_id: str, key: str, value: Any) -> None:
        with self.lock:
            self.orders[order_id][key] = value


def _handler(service: OrderService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _order_id(self) -> str | None:
            prefix = "/orders/"
            return self.path[len(prefix) :] if self.path.startswith(prefix) else None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                order = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                order = None
            if self.path != "/orders" or not isinstance(order, dict):
                self._answer(400, {"error": "POST /orders with a JSON object"})
                return
            order_id = service.add(order)
            self._answer(201, service.orders[order_id])

        def do_GET(self) -> None:
            order_id = self._order_id()
            if order_id is None:
                self._answer(404, {"error": "unknown path"})
                return
            with service.lock:
                service.lookups[order_id] += 1
                service.in_flight += 1
                service.in_flight_max = max(service.in_flight_max, service.in_flight)
            try:
                if order_id in service.stalled:
                    time.sleep(service.stalled[order_id])
                if order_id in service.failing:
                    self._answer(service.failing[order_id], {"error": "told to fail"})
                    return
                order = service.orders.get(order_id)
                self._answer(200 if order else 404, order or {"error": "unknown order"})
            finally:
                with service.lock:
                    service.in_flight -= 1

        def do_DELETE(self) -> None:
            order_id = self._order_id()
            with service.lock:
                order = service.orders.pop(order_id or "", None)
            self._answer(200 if order else 404, {"id": order_id, "status": "cancelled"})

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def order_service() -> Iterator[OrderService]:
    """A running service on a free loopback port (`service.url`), stopped afterwards."""
    service = OrderService()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(service))
    server.daemon_threads = True
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


if __name__ == "__main__":  # pragma: no cover - for trying the example locustfile by hand
    with order_service() as running:
        print(f"PORT {running.url.rsplit(':', 1)[1]}", flush=True)
        threading.Event().wait(3600)
