"""Reserving stock: all lines or none, once per order, and the last unit goes to exactly one of two orders at once."""

import threading
from typing import Any

import pytest
from django.db import connections

from inventory.models import Reservation, Stock
from inventory.services import stock_release_for_order, stock_reserve

ONE = [{"productId": "P001", "quantity": 1}]


@pytest.mark.django_db
def test_an_order_gets_all_its_lines_or_none() -> None:
    Stock.objects.create(sku="P001", available=5)
    Stock.objects.create(sku="P002", available=1)
    missing = stock_reserve(order_id="ORD-A", items=[{"productId": "P001", "quantity": 2}, {"productId": "P002", "quantity": 2}])
    assert missing.status == "out_of_stock" and missing.missing == ["P002"]
    assert Stock.objects.get(sku="P001").available == 5  # the line that fitted was rolled back

    reserved = stock_reserve(order_id="ORD-B", items=[{"productId": "P001", "quantity": 2}])
    again = stock_reserve(order_id="ORD-B", items=[{"productId": "P001", "quantity": 2}])
    assert reserved.status == again.status == "reserved" and Stock.objects.get(sku="P001").available == 3


@pytest.mark.django_db
def test_releasing_gives_the_units_back_once_and_an_unreserved_order_never_reserves() -> None:
    Stock.objects.create(sku="P001", available=1)
    stock_reserve(order_id="ORD-A", items=ONE)
    stock_release_for_order(order_id="ORD-A")
    stock_release_for_order(order_id="ORD-A")
    assert Stock.objects.get(sku="P001").available == 1

    assert stock_release_for_order(order_id="ORD-B").status == "cancelled"  # cancelled before it reached inventory
    assert stock_reserve(order_id="ORD-B", items=ONE).status == "cancelled"
    assert Stock.objects.get(sku="P001").available == 1


@pytest.mark.django_db(transaction=True)
def test_two_orders_for_the_last_unit_at_once_exactly_one_gets_it() -> None:
    Stock.objects.create(sku="P001", available=1)
    start = threading.Barrier(2, timeout=20)
    outcomes: dict[str, str] = {}
    errors: list[BaseException] = []

    def reserve(order_id: str) -> None:
        try:
            start.wait()
            outcomes[order_id] = stock_reserve(order_id=order_id, items=ONE).status
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads: list[Any] = [threading.Thread(target=reserve, args=(f"ORD-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not errors, errors
    assert sorted(outcomes.values()) == ["out_of_stock", "reserved"]
    assert Stock.objects.get(sku="P001").available == 0
    assert Reservation.objects.filter(status="reserved").count() == 1
