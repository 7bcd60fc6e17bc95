"""Validation of order requests as the gateway and the matcher receive them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradingstack.orders import OrderRejected, OrderRequest, parse_internal, parse_order_id, parse_public

GOOD = {"account": "ACC0001", "symbol": "600000", "side": "buy", "qty": 100, "price": Decimal("10.5")}


@pytest.mark.parametrize(
    ("price", "cents"),
    [(Decimal("10.5"), 1050), (Decimal("0.01"), 1), (7, 700), (Decimal("12.34"), 1234), (12.34, 1234)],
)
def test_prices_become_exact_cents(price: object, cents: int) -> None:
    assert parse_public({**GOOD, "price": price}).price_cents == cents


def test_a_valid_public_order_maps_to_the_internal_body() -> None:
    request = parse_public({**GOOD, "client_order_id": "c-1"})
    assert request == OrderRequest("ACC0001", "600000", "buy", 100, 1050, "c-1")
    assert parse_internal(request.to_internal()) == request


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"price": Decimal("10.505")}, 400, "more than 2 decimals"),
        ({"price": 0}, 400, "price must be > 0"),
        ({"price": "10.5"}, 400, "price must be a number"),
        ({"price": True}, 400, "price must be a number"),
        ({"qty": 0}, 400, "qty must be an integer"),
        ({"qty": 1.5}, 400, "qty must be an integer"),
        ({"qty": True}, 400, "qty must be an integer"),
        ({"side": "short"}, 400, "side must be"),
        ({"account": 7}, 400, "account must be a string"),
        ({"client_order_id": "has space"}, 400, "client_order_id"),
        ({"quantity": 5}, 400, "unknown field"),
        ({"account": "ACC0101"}, 404, "unknown account"),
        ({"symbol": "600001"}, 404, "unknown symbol"),
    ],
)
def test_invalid_orders_are_rejected_with_a_reason(change: dict[str, object], status: int, message: str) -> None:
    with pytest.raises(OrderRejected, match=message) as caught:
        parse_public({**GOOD, **change})
    assert caught.value.status == status


@pytest.mark.parametrize("missing", ["account", "symbol", "side", "qty", "price"])
def test_missing_fields_are_named(missing: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(OrderRejected, match=f"missing field '{missing}'"):
        parse_public(body)


def test_a_non_object_body_is_rejected() -> None:
    with pytest.raises(OrderRejected, match="JSON object"):
        parse_public([GOOD])


@pytest.mark.parametrize(("text", "expected"), [("12", 12), ("0", None), ("-1", None), ("abc", None), ("1e3", None)])
def test_order_ids_in_paths(text: str, expected: int | None) -> None:
    assert parse_order_id(text) == expected
