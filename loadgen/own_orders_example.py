"""An example locustfile for a system of your own: orders into a JSON HTTP API, each acknowledgement recorded.

Copy it and change what your API needs. It assumes an API shaped like many order services:

* ``POST /orders`` with a JSON body (``account``, ``symbol``, ``side``, ``qty``, ``price``) answers
  ``201`` (or ``200``) with a JSON object whose ``id`` is the order's id;
* ``DELETE /orders/{id}`` answers ``200`` (or ``204``) when the order is cancelled.

Every success answer is recorded with ``loadgen.ledger.acknowledged`` and every cancel with
``loadgen.ledger.cancelled``; after recovery the experiment's integrity check looks each id up again
(``{check: acknowledged_found_by_url, url: "{gateway}/orders/{id}"}``, docs/integrity.md, "Integrity on
your own system"). Record only what your system told you; fields you leave out show as "—".

Environment (optional): ``OWN_ORDERS_PATH`` (default ``/orders``), ``OWN_ORDERS_ID_FIELD`` (default ``id``),
``OWN_ORDERS_SYMBOLS`` (comma-separated, default ``AAA,BBB``). Outside a chaos run (no
``CHAOS_LEDGER_DIR``) the ledger calls do nothing, so the file also runs under plain ``locust``.

Run by the framework: ``load: {locustfile: path/to/this.py, host: gateway, ...}`` in the experiment.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from loadgen import ledger

ORDERS_PATH = os.environ.get("OWN_ORDERS_PATH", "/orders").rstrip("/")
ID_FIELD = os.environ.get("OWN_ORDERS_ID_FIELD", "id")
SYMBOLS = [s.strip() for s in os.environ.get("OWN_ORDERS_SYMBOLS", "AAA,BBB").split(",") if s.strip()]
PLACED = {200, 201}
CANCELLED = {200, 204}


def _json_object(resp: Any) -> dict[str, Any] | None:
    try:
        body = resp.json()
    except (ValueError, TypeError):
        return None
    return body if isinstance(body, dict) else None


class OrderClient(FastHttpUser):
    """Places small limit orders and cancels some of them; records every acknowledgement."""

    wait_time = between(0.05, 0.3)
    network_timeout = 5.0
    connection_timeout = 2.0

    def on_start(self) -> None:
        self.account = f"ACC{random.randint(1, 50):04d}"
        self.open_orders: list[str] = []

    @task(4)
    def place(self) -> None:
        body = {
            "account": self.account,
            "symbol": random.choice(SYMBOLS),
            "side": random.choice(("buy", "sell")),
            "qty": 100 * random.randint(1, 5),
            "price": round(random.uniform(9.9, 10.1), 2),
        }
        with self.client.post(ORDERS_PATH, json=body, name="POST orders", catch_response=True) as resp:
            arrived = time.time()
            answer = _json_object(resp) if resp.status_code in PLACED else None
            order_id = None if answer is None else answer.get(ID_FIELD)
            if order_id is None:
                resp.failure(f"HTTP {resp.status_code} without an order id")
                return
            resp.success()
        # What the system acknowledged, recorded before anything else happens to the order.
        ledger.acknowledged(order_id, t=arrived, **body)
        self.open_orders.append(str(order_id))

    @task(1)
    def cancel(self) -> None:
        if not self.open_orders:
            return
        order_id = self.open_orders.pop(random.randrange(len(self.open_orders)))
        with self.client.delete(f"{ORDERS_PATH}/{order_id}", name="DELETE orders/{id}", catch_response=True) as resp:
            arrived = time.time()
            if resp.status_code in CANCELLED:
                resp.success()
            else:
                resp.failure(f"HTTP {resp.status_code}")
        if resp.status_code in CANCELLED:
            ledger.cancelled(order_id, t=arrived)
