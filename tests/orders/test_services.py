"""Orders as events: placing, commands on fresh state, optimistic concurrency, as_of, the read model and its rebuild."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connections

from events import streams
from events.models import StoredEvent
from events.streams import NewEvent
from inventory.events import StockReserved
from orders import projections, store
from orders.domain import CannotCancel
from orders.models import OrderSummary
from orders.services import order_advance, order_cancel, order_place, order_project
from payments.events import PaymentCaptured
from payments.services import payment_for_order, payment_refund_for_order
from shipping.events import OrderShipped
from tests.commerce import ADDRESS, catalogue, customer


def place(user: Any, items: list[tuple[str, int]] | None = None) -> str:
    return order_place(customer=user, items=items or [("P001", 2), ("P002", 1)], shipping_address=ADDRESS).id


def captured(order_id: str) -> NewEvent:
    return NewEvent(PaymentCaptured, {"orderId": order_id, "paymentId": "1", "amount": "28.20", "currency": "EUR"})


def reserved(order_id: str) -> NewEvent:
    return NewEvent(StockReserved, {"orderId": order_id, "items": [{"productId": "P001", "quantity": 2}]})


@pytest.mark.django_db
def test_placing_an_order_appends_order_placed_2_2_as_version_1_and_projects_it() -> None:
    catalogue()
    ada = customer()
    order = order_place(customer=ada, items=[("P001", 2), ("P002", 1), ("P001", 1)], shipping_address=ADDRESS)

    event = StoredEvent.objects.get(subject=order.id)
    assert (event.topic, event.event_type, event.event_version, event.sequence) == ("orders", "OrderPlaced", "2.2", 1)
    assert event.data == {
        "orderId": order.id,
        "status": "Placed",
        "items": [{"productId": "P001", "quantity": 3}, {"productId": "P002", "quantity": 1}],
        "shippingAddress": ADDRESS,
        "userId": str(ada.pk),
        "total": "40.70",
        "currency": "EUR",
    }
    row = OrderSummary.objects.get(order_id=order.id)
    assert (row.status, row.customer, row.total, row.currency, row.item_count, row.version) == (
        "placed",
        ada,
        Decimal("40.70"),
        "EUR",
        4,
        1,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "items, message",
    [
        ([], "at least one item"),
        ([("NOPE", 1)], "No such product: NOPE"),
        ([("P001", 0)], "quantity of P001 must be at least 1"),
    ],
)
def test_a_bad_order_is_refused_with_the_reason_and_leaves_nothing(items: list, message: str) -> None:
    catalogue()
    with pytest.raises(ValidationError, match=message):
        order_place(customer=customer(), items=items, shipping_address=ADDRESS)
    assert not StoredEvent.objects.filter(event_type="OrderPlaced").exists() and not OrderSummary.objects.exists()


@pytest.mark.django_db
def test_the_saga_step_confirms_only_when_both_facts_are_in_and_a_repeat_changes_nothing() -> None:
    catalogue()
    order_id = place(customer())
    streams.append_to_end(order_id, [captured(order_id)])
    assert order_advance(order_id=order_id).status == "placed"
    streams.append_to_end(order_id, [reserved(order_id)])
    assert order_advance(order_id=order_id).status == "confirmed"
    assert order_advance(order_id=order_id).version == 4  # again: nothing appended
    assert [e.event_type for e in store.history(order_id)] == [
        "OrderPlaced",
        "PaymentCaptured",
        "StockReserved",
        "OrderConfirmed",
    ]
    assert OrderSummary.objects.get(order_id=order_id).status == "confirmed"


@pytest.mark.django_db
def test_cancel_keeps_the_reason_and_a_shipped_order_cannot_be_cancelled() -> None:
    catalogue()
    order_id = place(customer())
    assert order_cancel(order_id=order_id, reason="changed my mind").reason == "changed my mind"
    assert order_cancel(order_id=order_id, reason="again").version == 2  # already cancelled: nothing new
    shipped_id = place(customer("bob"))
    shipped = {"orderId": shipped_id, "userId": "1", "shipmentId": "s", "trackingNumber": "T1"}
    streams.append_to_end(shipped_id, [NewEvent(OrderShipped, shipped)])
    with pytest.raises(CannotCancel, match="has shipped"):
        order_cancel(order_id=shipped_id, reason="too late")


@pytest.mark.django_db(transaction=True)
def test_two_writers_at_once_one_wins_the_other_decides_again_on_fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Confirm and cancel race from the same version: no lost update, whichever wins."""
    catalogue()
    order_id = place(customer())
    streams.append_to_end(order_id, [captured(order_id), reserved(order_id)])
    both_loaded = threading.Barrier(2, timeout=20)
    loads: list[int] = []
    real_load = store.load

    def load_then_wait(oid: str) -> Any:
        order = real_load(oid)
        loads.append(order.version)
        if len(loads) <= 2:
            both_loaded.wait()  # both writers hold version 3 before either appends
        return order

    monkeypatch.setattr(store, "load", load_then_wait)
    errors: list[BaseException] = []

    def run(command: Any) -> None:
        try:
            command()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=run, args=(lambda: order_advance(order_id=order_id),)),
        threading.Thread(target=run, args=(lambda: order_cancel(order_id=order_id, reason="customer called"),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors

    assert loads[:2] == [3, 3] and len(loads) == 3  # the loser loaded again, once
    kinds = [(e.sequence, e.event_type) for e in store.history(order_id)]
    assert kinds in (
        [(1, "OrderPlaced"), (2, "PaymentCaptured"), (3, "StockReserved"), (4, "OrderConfirmed"), (5, "OrderCancelled")],
        [(1, "OrderPlaced"), (2, "PaymentCaptured"), (3, "StockReserved"), (4, "OrderCancelled")],
    )
    order = real_load(order_id)
    assert order.status == "cancelled" and order.reason == "customer called"
    assert OrderSummary.objects.get(order_id=order_id).version == order.version


@pytest.mark.django_db
def test_as_of_gives_the_state_before_and_after_each_event() -> None:
    catalogue()
    ada = customer()
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        order_id = place(ada)
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        streams.append_to_end(order_id, [captured(order_id)])
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        streams.append_to_end(order_id, [reserved(order_id)])
    with time_machine.travel(start + timedelta(minutes=3), tick=False):
        order_advance(order_id=order_id)
    with time_machine.travel(start + timedelta(minutes=4), tick=False):
        order_cancel(order_id=order_id, reason="late cancel")

    expected = [
        ("placed", "pending", "pending"),
        ("placed", "captured", "pending"),
        ("placed", "captured", "reserved"),
        ("confirmed", "captured", "reserved"),
        ("cancelled", "captured", "reserved"),
    ]
    tick = timedelta(microseconds=1)
    assert not store.as_of(order_id, start - tick).exists
    for version, event in enumerate(store.history(order_id), start=1):
        assert event.timestamp == start + timedelta(minutes=version - 1)
        before, at = store.as_of(order_id, event.timestamp - tick), store.as_of(order_id, event.timestamp)
        assert before.version == version - 1 and at.version == version
        assert (at.status, at.payment, at.stock) == expected[version - 1]
        if version > 1:
            assert (before.status, before.payment, before.stock) == expected[version - 2]
    assert store.as_of(order_id, start + timedelta(days=1)) == store.load(order_id)


@pytest.mark.django_db
def test_the_read_model_never_goes_back_to_an_older_version() -> None:
    catalogue()
    order_id = place(customer())
    old = store.load(order_id)
    streams.append_to_end(order_id, [captured(order_id)])
    order_project(order_id=order_id)
    projections.project(old)  # a late writer with a stale fold
    assert OrderSummary.objects.get(order_id=order_id).payment == "captured"


@pytest.mark.django_db
def test_rebuild_projections_yields_exactly_the_live_rows(settings: Any) -> None:
    settings.PAYMENTS_PROVIDER_LATENCY_MS = 0
    catalogue()
    ada, bob = customer(), customer("bob")
    confirmed = place(ada)
    payment_for_order(order_id=confirmed, amount=Decimal("28.20"), currency="EUR", order_data={})
    streams.append_to_end(confirmed, [reserved(confirmed)])
    order_advance(order_id=confirmed)
    refunded = place(bob, [("P003", 1)])
    payment_for_order(order_id=refunded, amount=Decimal("99.00"), currency="EUR", order_data={})
    order_advance(order_id=refunded)
    order_cancel(order_id=refunded, reason="no longer needed")
    payment_refund_for_order(order_id=refunded)
    order_project(order_id=refunded)
    place(ada, [("P002", 5)])
    live = list(OrderSummary.objects.order_by("order_id").values())
    assert len(live) == 3 and {row["payment"] for row in live} == {"captured", "refunded", "pending"}

    OrderSummary.objects.update(status="garbage")
    OrderSummary.objects.create(
        order_id="ORD-STALE",
        status="x",
        payment="",
        stock="",
        total=0,
        currency="",
        item_count=0,
        version=1,
        last_change_at=datetime.now(UTC),
    )
    call_command("rebuild_projections", stdout=open("/dev/null", "w"))
    assert list(OrderSummary.objects.order_by("order_id").values()) == live
