"""What the reference stack keeps in Redis: its keys, the public JSON of orders and fills, and the writes
that persist an order (with its fills and the cash and share moves) or a cancel, as plain data."""

from __future__ import annotations

import json
from typing import Any

from tradingstack.book import Fill
from tradingstack.orders import OrderRequest, cents_to_price

EPOCH_KEY = "ts:epoch"
ORDER_SEQ_KEY = "ts:order_seq"
SEEDED_KEY = "ts:seeded"
FILLS_LOG_KEY = "ts:fills"
OPEN_STATUSES = ("new", "partially_filled")

Op = list[str]


def order_key(order_id: int) -> str:
    return f"ts:order:{order_id}"


def order_fills_key(order_id: int) -> str:
    return f"ts:order:{order_id}:fills"


def account_key(account: str) -> str:
    return f"ts:account:{account}"


def open_key(symbol: str) -> str:
    """Sorted set of the open order ids of a symbol, scored by id: the book in time priority."""
    return f"ts:open:{symbol}"


def client_order_key(account: str, client_order_id: str) -> str:
    return f"ts:client:{account}:{client_order_id}"


def render_fill(raw: str) -> dict[str, Any]:
    """A stored fill → its public JSON form."""
    fill = json.loads(raw)
    return {
        "fill_id": fill["fill_id"],
        "buy_order_id": fill["buy_order_id"],
        "sell_order_id": fill["sell_order_id"],
        "qty": fill["qty"],
        "price": cents_to_price(fill["price_cents"]),
        "at": fill["at"],
    }


def render_order(fields: dict[str, str], fills: list[str]) -> dict[str, Any]:
    """A stored order hash and its fills → the public order JSON of docs/contracts.md."""
    return {
        "order_id": fields["order_id"],
        "client_order_id": fields.get("client_order_id") or None,
        "account": fields["account"],
        "symbol": fields["symbol"],
        "side": fields["side"],
        "qty": int(fields["qty"]),
        "price": cents_to_price(int(fields["price_cents"])),
        "filled_qty": int(fields["filled_qty"]),
        "status": fields["status"],
        "ack_at": float(fields["ack_at"]),
        "fills": [render_fill(f) for f in fills],
    }


def _status(qty: int, filled: int) -> str:
    return "filled" if filled == qty else "partially_filled" if filled else "new"


def order_ops(
    epoch: int, order_id: int, request: OrderRequest, fills: list[Fill], ack_at: float
) -> tuple[list[Op], dict[str, Any]]:
    """The writes that persist a new order, its fills, the makers' new state and the cash/share moves,
    and the order's public JSON once they are applied."""
    filled = sum(f.qty for f in fills)
    fields = {
        "order_id": str(order_id),
        "client_order_id": request.client_order_id or "",
        "account": request.account,
        "symbol": request.symbol,
        "side": request.side,
        "qty": str(request.qty),
        "price_cents": str(request.price_cents),
        "filled_qty": str(filled),
        "status": _status(request.qty, filled),
        "ack_at": repr(ack_at),
        "epoch": str(epoch),
    }
    records = [
        json.dumps(
            {
                "fill_id": f"{order_id}-{n}",
                "symbol": request.symbol,
                "buy_order_id": str(f.buy_order_id),
                "sell_order_id": str(f.sell_order_id),
                "buy_account": f.buy_account,
                "sell_account": f.sell_account,
                "qty": f.qty,
                "price_cents": f.price_cents,
                "at": ack_at,
                "epoch": epoch,
            }
        )
        for n, f in enumerate(fills, start=1)
    ]
    ops: list[Op] = [["HSET", order_key(order_id), *(x for kv in fields.items() for x in kv)]]
    if request.client_order_id:
        ops.append(["SET", client_order_key(request.account, request.client_order_id), str(order_id)])
    for fill, record in zip(fills, records, strict=True):
        amount = fill.qty * fill.price_cents
        maker = fill.maker_order_id
        ops += [
            ["RPUSH", FILLS_LOG_KEY, record],
            ["RPUSH", order_fills_key(order_id), record],
            ["RPUSH", order_fills_key(maker), record],
            ["HINCRBY", account_key(fill.buy_account), "cash", str(-amount)],
            ["HINCRBY", account_key(fill.buy_account), request.symbol, str(fill.qty)],
            ["HINCRBY", account_key(fill.sell_account), "cash", str(amount)],
            ["HINCRBY", account_key(fill.sell_account), request.symbol, str(-fill.qty)],
            ["HINCRBY", order_key(maker), "filled_qty", str(fill.qty)],
            ["HSET", order_key(maker), "status", "filled" if fill.maker_remaining == 0 else "partially_filled"],
        ]
        if fill.maker_remaining == 0:
            ops.append(["ZREM", open_key(request.symbol), str(maker)])
    if filled < request.qty:
        ops.append(["ZADD", open_key(request.symbol), str(order_id), str(order_id)])
    return ops, render_order(fields, records)


def cancel_ops(order_id: int, symbol: str) -> list[Op]:
    """The writes that cancel an open order the book held."""
    return [["HSET", order_key(order_id), "status", "cancelled"], ["ZREM", open_key(symbol), str(order_id)]]
