"""Orders in the admin: create one through the service, the list is the read model, the page shows history and as_of."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from events import streams
from events.models import StoredEvent
from events.streams import NewEvent
from orders.models import OrderSummary
from payments.events import PaymentCaptured
from tests.commerce import catalogue, customer

pytestmark = pytest.mark.django_db

ADD = reverse("admin:orders_ordersummary_add")


def test_an_order_created_in_the_admin_goes_through_the_service(admin_client: Client) -> None:
    catalogue()
    ada = customer()
    form = admin_client.get(ADD)
    assert form.status_code == 200 and "product_0" in form.context["adminform"].form.fields

    response = admin_client.post(
        ADD,
        {
            "customer": ada.pk,
            "product_0": "P001",
            "quantity_0": "2",
            "product_1": "P003",
            "quantity_1": "1",
            "city": "Pune",
            "pincode": "411001",
        },
    )
    row = OrderSummary.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("admin:orders_ordersummary_change", args=[row.pk])
    event = StoredEvent.objects.get(subject=row.order_id)
    assert event.event_type == "OrderPlaced" and event.event_version == "2.2" and event.sequence == 1
    assert event.data["total"] == "124.00" and event.data["userId"] == str(ada.pk)
    assert event.data["shippingAddress"] == {"city": "Pune", "pincode": "411001"}

    listing = admin_client.get(reverse("admin:orders_ordersummary_changelist"))
    assert row.order_id in listing.content.decode()


def test_an_order_without_items_is_refused_in_the_form(admin_client: Client) -> None:
    catalogue()
    ada = customer()
    response = admin_client.post(ADD, {"customer": ada.pk, "city": "Pune", "pincode": "411001"})
    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert not StoredEvent.objects.filter(event_type="OrderPlaced").exists()


def test_the_order_page_shows_its_history_and_its_state_as_of_a_chosen_time(admin_client: Client) -> None:
    catalogue()
    ada = customer()
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        admin_client.post(ADD, {"customer": ada.pk, "product_0": "P002", "quantity_0": "1", "city": "Pune", "pincode": "1"})
    order_id = OrderSummary.objects.get().order_id
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        streams.append_to_end(
            order_id, [NewEvent(PaymentCaptured, {"orderId": order_id, "paymentId": "7", "amount": "3.20", "currency": "EUR"})]
        )
    page = reverse("admin:orders_ordersummary_change", args=[order_id])

    now = admin_client.get(page)
    assert [e.event_type for e in now.context["events"]] == ["OrderPlaced", "PaymentCaptured"]
    assert now.context["state"].payment == "captured"
    html = now.content.decode()
    assert "OrderPlaced" in html and "PaymentCaptured" in html and "2026-03-01 09:05:00" in html

    before = admin_client.get(page, {"as_of": "2026-03-01T09:04:59"})
    assert before.context["state"].version == 1 and before.context["state"].payment == "pending"
    bad = admin_client.get(page, {"as_of": "yesterday"})
    assert bad.status_code == 200 and bad.context["state"].version == 2


def test_cancel_from_the_order_page_and_from_the_list(admin_client: Client) -> None:
    catalogue()
    ada = customer()
    for _ in range(2):
        admin_client.post(ADD, {"customer": ada.pk, "product_0": "P002", "quantity_0": "1", "city": "Pune", "pincode": "1"})
    first, second = OrderSummary.objects.order_by("order_id").values_list("order_id", flat=True)

    admin_client.post(reverse("admin:orders_ordersummary_cancel", args=[first]), {"reason": "asked by phone"})
    assert StoredEvent.objects.get(subject=first, event_type="OrderCancelled").data["reason"] == "asked by phone"
    admin_client.post(reverse("admin:orders_ordersummary_changelist"), {"action": "cancel_orders", "_selected_action": [second]})
    assert OrderSummary.objects.get(order_id=second).status == "cancelled"
