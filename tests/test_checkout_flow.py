"""End to end, event-driven checkout: relay and worker processes, the real broker, the orders API on a live server.

Several service queues share one worker process to spare the cores; inventory has a worker of its
own so that it can be stopped and started again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from events.models import InboxEntry, StoredEvent
from inventory.models import Reservation, Stock
from notifications.models import Notification
from orders import store
from orders.models import OrderSummary
from orders.services import order_place
from payments.models import Payment, ProviderSettings
from shipping.models import Shipment, ShippingOrder
from tests.commerce import ADDRESS, catalogue, customer
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

OTHERS = "orders,payments,shipping,notifications"


@dataclass
class Stack:
    processes: Any

    def worker(self, name: str, queues: str) -> Any:
        worker = self.processes(
            name, "-m", "celery", "-A", "project", "worker", "-Q", queues, "-c", "2", "-n", f"{name}@test", "-l", "INFO"
        )
        wait_for(lambda: " ready." in worker.output() or worker.handle.poll() is not None, timeout=60, message=f"{name} ready")
        assert worker.handle.poll() is None, worker.output()
        return worker


@pytest.fixture
def stack(processes: Any, live_server: Any, purge: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("ORDERS_BASE_URL", live_server.url)
    monkeypatch.setenv("PAYMENTS_PROVIDER_LATENCY_MS", "0")
    monkeypatch.setenv("EVENTS_RETRY_BACKOFF_SECONDS", "0.2")
    monkeypatch.setenv("EVENTS_RETRY_BACKOFF_MAX_SECONDS", "1")
    catalogue()
    processes("relay", "manage.py", "relay")
    yield Stack(processes)


def status_of(order_id: str, status: str, timeout: float = 60) -> Any:
    return wait_for(lambda: (o := store.load(order_id)).status == status and o, timeout=timeout, message=f"{order_id} {status}")


def kinds(order_id: str) -> list[str]:
    return [e.event_type for e in store.history(order_id)]


def notified(kind: str, recipient: str) -> Notification:
    return wait_for(lambda: Notification.objects.filter(kind=kind, recipient=recipient).first(), timeout=60, message=kind)


def assert_read_model_is_live_and_rebuilds_to_itself(order_id: str, version: int) -> None:
    wait_for(lambda: OrderSummary.objects.filter(order_id=order_id, version=version).exists(), message="read model")
    live = list(OrderSummary.objects.order_by("order_id").values())
    call_command("rebuild_projections", stdout=open("/dev/null", "w"))
    assert list(OrderSummary.objects.order_by("order_id").values()) == live


def test_an_order_from_the_admin_is_paid_reserved_confirmed_shipped_and_notified(stack: Stack, admin_client: Client) -> None:
    stack.worker("inventory", "inventory")
    stack.worker("others", OTHERS)
    ada = customer()
    admin_client.post(
        reverse("admin:orders_ordersummary_add"),
        {"customer": ada.pk, "product_0": "P001", "quantity_0": "2", "product_1": "P002", "quantity_1": "1", **ADDRESS},
    )
    order_id = OrderSummary.objects.get().order_id

    status_of(order_id, "confirmed")
    shipment = wait_for(lambda: Shipment.objects.filter(order_id=order_id).first(), message="shipment")
    assert (shipment.city, shipment.pincode) == (ADDRESS["city"], ADDRESS["pincode"])
    notified("order-confirmed", "ada@example.com")

    # Each service got OrderPlaced in the version it asked for, converted from the one 2.2 message.
    placed = StoredEvent.objects.get(subject=order_id, event_type="OrderPlaced")
    assert placed.event_version == "2.2"
    assert Reservation.objects.get(order_id=order_id).event_data == {
        "orderId": order_id,
        "userId": str(ada.pk),
        "orderStatus": "Placed",
    }
    v2_1 = {k: v for k, v in placed.data.items() if k not in ("total", "currency")}
    assert ShippingOrder.objects.get(order_id=order_id).event_data == v2_1 and "total" not in v2_1
    payment = Payment.objects.get(order_id=order_id)
    assert payment.request_data == placed.data and set(payment.request_data) >= {"total", "currency"}
    assert (payment.status, payment.amount, payment.via) == ("captured", Decimal("28.20"), "event")
    assert Stock.objects.get(sku="P001").available == 98 and Stock.objects.get(sku="P002").available == 99

    admin_client.post(
        reverse("admin:shipping_shipment_changelist"), {"action": "mark_shipped", "_selected_action": [shipment.pk]}
    )
    status_of(order_id, "shipped")
    shipped = notified("order-shipped", "ada@example.com")
    assert re.search(r"tracking number TRK\w+", shipped.body)
    history = kinds(order_id)
    assert history[0] == "OrderPlaced" and history[3:] == ["OrderConfirmed", "ShipmentCreated", "OrderShipped"]
    assert sorted(history[1:3]) == ["PaymentCaptured", "StockReserved"]
    events = store.history(order_id)
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[3].causation_id in {str(events[1].event_id), str(events[2].event_id)}  # the saga step's cause
    assert_read_model_is_live_and_rebuilds_to_itself(order_id, 6)


def test_a_failed_payment_cancels_the_order_and_releases_the_stock(stack: Stack) -> None:
    ProviderSettings.objects.create(pk=1, failure_rate=1.0, latency_ms=0)
    stack.worker("inventory", "inventory")
    order_id = order_place(customer=customer(), items=[("P003", 3)], shipping_address=ADDRESS).id
    wait_for(lambda: "StockReserved" in kinds(order_id), timeout=60, message="stock reserved first")
    assert Stock.objects.get(sku="P003").available == 97
    stack.worker("others", OTHERS)

    order = status_of(order_id, "cancelled")
    assert order.reason == "payment failed: card declined by the provider"
    wait_for(lambda: store.load(order_id).stock == "released", message="stock released")
    assert Stock.objects.get(sku="P003").available == 100
    cancelled = notified("order-cancelled", "ada@example.com")
    assert "payment failed: card declined by the provider" in cancelled.body
    assert Payment.objects.get(order_id=order_id).status == "declined"
    assert not Shipment.objects.filter(order_id=order_id).exists()
    assert_read_model_is_live_and_rebuilds_to_itself(order_id, store.load(order_id).version)


def test_out_of_stock_cancels_the_order_and_refunds_the_payment(stack: Stack) -> None:
    Stock.objects.filter(sku="P002").update(available=1)
    stack.worker("others", OTHERS)
    order_id = order_place(customer=customer(), items=[("P001", 1), ("P002", 2)], shipping_address=ADDRESS).id
    wait_for(lambda: "PaymentCaptured" in kinds(order_id), timeout=60, message="payment captured first")
    stack.worker("inventory", "inventory")

    assert status_of(order_id, "cancelled").reason == "out of stock: P002"
    wait_for(lambda: store.load(order_id).payment == "refunded", message="refund")
    assert Payment.objects.get(order_id=order_id).status == "refunded"
    assert Stock.objects.get(sku="P001").available == 100 and Stock.objects.get(sku="P002").available == 1
    assert "out of stock: P002" in notified("order-cancelled", "ada@example.com").body
    assert "PaymentRefunded" in kinds(order_id) and "StockReleased" not in kinds(order_id)


@pytest.mark.parametrize("late", ["inventory", "payments"])
def test_payment_and_stock_confirm_in_either_order_and_a_stopped_worker_loses_nothing(stack: Stack, late: str) -> None:
    """The late service's worker is stopped while the order is placed; the order waits, then completes."""
    early = "payments" if late == "inventory" else "inventory"
    late_worker = stack.worker(late, late)
    stack.worker("early", f"orders,shipping,notifications,{early}")
    late_worker.stop()
    order_id = order_place(customer=customer(), items=[("P001", 1)], shipping_address=ADDRESS).id

    early_fact = {"payments": "PaymentCaptured", "inventory": "StockReserved"}[early]
    wait_for(lambda: early_fact in kinds(order_id), timeout=60, message=early_fact)
    assert store.load(order_id).status == "placed"  # waiting for the stopped service
    assert wait_for(lambda: OrderSummary.objects.filter(order_id=order_id, version=2).exists(), message="projected")

    stack.worker(f"{late}-again", late)
    status_of(order_id, "confirmed")
    history = kinds(order_id)
    assert history[1] == early_fact and history[3] == "OrderConfirmed"
    wait_for(lambda: Shipment.objects.filter(order_id=order_id).exists(), message="shipment")


def test_the_same_order_placed_delivered_twice_charges_reserves_and_ships_once(stack: Stack) -> None:
    inventory = stack.worker("inventory", "inventory")
    others = stack.worker("others", OTHERS)
    order_id = order_place(customer=customer(), items=[("P001", 1)], shipping_address=ADDRESS).id
    status_of(order_id, "confirmed")
    wait_for(lambda: Shipment.objects.filter(order_id=order_id).exists(), message="shipment")

    placed = StoredEvent.objects.get(subject=order_id, event_type="OrderPlaced")
    StoredEvent.objects.filter(pk=placed.pk).update(published_at=None)  # the relay sends the same event again
    wait_for(lambda: "'duplicates': 1" in inventory.output(), timeout=60, message="inventory saw the duplicate")
    wait_for(lambda: others.output().count("'duplicates': 1") >= 2, timeout=60, message="payments and shipping saw it")

    assert Payment.objects.filter(order_id=order_id).count() == 1
    assert Reservation.objects.filter(order_id=order_id).count() == 1 and Stock.objects.get(sku="P001").available == 99
    assert Shipment.objects.filter(order_id=order_id).count() == 1
    assert kinds(order_id).count("PaymentCaptured") == 1 and kinds(order_id).count("StockReserved") == 1
    assert kinds(order_id).count("ShipmentCreated") == 1 and kinds(order_id).count("OrderConfirmed") == 1
    placed_id = str(placed.event_id)
    assert InboxEntry.objects.filter(event_id=placed_id).count() == 3  # payments, inventory, shipping: once each
