"""The trace view: a saga flow with a retry and a dead letter, shown whole; what is in flight stands out."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from events import publish, subscriptions
from events.models import DeadLetter, HandlerFailure, InboxEntry, StoredEvent
from events.observability import trace
from orders import store
from orders.models import OrderSummary
from tests.commerce import ADDRESS, catalogue, customer
from tests.conftest import RelayThread, in_process_worker
from tests.support import Ping, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PAY = "payments.handlers.charge_order"
TELL = "notifications.handlers.tell_order_confirmed"
COMMERCE = ["orders", "payments", "inventory", "shipping", "notifications"]


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(user)
    return client


@contextlib.contextmanager
def broken(name: str, fails: Callable[[Any], bool]) -> Iterator[None]:
    """Handler `name` raises while `fails(event)` says so (in this process's worker)."""
    original = subscriptions.get(name)
    assert original is not None

    def handler(event: Any) -> None:
        if fails(event):
            raise RuntimeError(f"{name.rsplit('.', 1)[-1]} broken for {event.data.orderId}")
        original.func(event)

    subscriptions._subscriptions[name] = dataclasses.replace(original, func=handler)
    try:
        yield
    finally:
        subscriptions._subscriptions[name] = original


def settled(order_id: str) -> trace.Trace:
    return wait_for(lambda: (t := trace.find(order_id)).nodes and not t.in_flight and t, timeout=90, message="flow settled")


def test_a_saga_with_a_retry_and_a_dead_letter_is_shown_whole_and_completes_after_the_group_is_retried(
    staff: Client, live_server: Any, settings: Any, purge: None
) -> None:
    settings.ORDERS_BASE_URL = live_server.url
    settings.PAYMENTS_PROVIDER_LATENCY_MS = 0
    settings.EVENTS_HANDLER_MAX_ATTEMPTS = 3
    catalogue()
    ada = customer()
    paid_once: set[str] = set()

    def first_charge_fails(event: Any) -> bool:
        first = event.data.orderId not in paid_once
        paid_once.add(event.data.orderId)
        return first

    with (
        RelayThread(_relay()),
        in_process_worker(settings, COMMERCE),
        broken(PAY, first_charge_fails),
        broken(TELL, lambda event: True),
    ):
        staff.post(
            reverse("admin:orders_ordersummary_add"),
            {"customer": ada.pk, "product_0": "P001", "quantity_0": "2", **ADDRESS},
        )
        order_id = OrderSummary.objects.get().order_id
        wait_for(lambda: DeadLetter.objects.filter(handler=TELL).exists(), timeout=90, message="dead letter")
        # The last attempt's failure row is written after its dead letter is stored.
        wait_for(
            lambda: HandlerFailure.objects.filter(handler=TELL, outcome=HandlerFailure.Outcome.DEAD).exists(),
            timeout=30,
            message="the dead-lettered attempt's failure row",
        )
        flow = settled(order_id)

        page = staff.get(reverse("admin:events_trace_changelist"), {"q": order_id}).content.decode()
        kinds = [e.event_type for e in store.history(order_id)]
        assert {"OrderPlaced", "PaymentCaptured", "StockReserved", "OrderConfirmed", "ShipmentCreated"} <= set(kinds)
        for event in StoredEvent.objects.filter(subject=order_id):
            assert reverse("admin:events_storedevent_change", args=[event.pk]) in page  # every event, linked
            assert f">{event.event_type}</a>" in page
        # The tree by causation: each event under the one that caused it.
        placed = next(n for n in flow.nodes if n.event.event_type == "OrderPlaced")
        assert flow.roots[0] is placed
        under_placed = {child.event.event_type for child in placed.children}
        assert {"PaymentCaptured", "StockReserved"} <= under_placed
        confirmed = next(n for n in flow.nodes if n.event.event_type == "OrderConfirmed")
        assert str(confirmed.event.causation_id) in {str(c.event.event_id) for c in placed.children}
        assert placed.service == "orders" and confirmed.service == "orders"
        captured = next(n for n in flow.nodes if n.event.event_type == "PaymentCaptured")
        assert captured.service == "payments"  # published by the payments handler

        # The retry: the failed first attempt with its error, then handled on attempt 2.
        pay = next(h for h in placed.handlers if h.name == PAY)
        assert pay.state == trace.HANDLED and pay.attempts == 2 and pay.inbox.duration_ms is not None
        assert [(f.attempt, f.outcome) for f in pay.failures] == [(1, HandlerFailure.Outcome.RETRIED)]
        assert f"charge_order broken for {order_id}" in page and "attempt 1 at" in page and "→ retried" in page
        # The dead letter: every attempt's error, the dead letter linked, its state standing out.
        tell = next(h for h in confirmed.handlers if h.name == TELL)
        assert tell.state == trace.DEAD and tell.attempts == 3
        assert [f.attempt for f in tell.failures] == [1, 2, 3]
        letter = DeadLetter.objects.get(handler=TELL)
        assert reverse("admin:events_deadletter_change", args=[letter.pk]) in page
        assert '<span class="badge problem">dead-lettered</span>' in page
        assert "Nothing in flight" in page
        # Every other handler of the flow handled its event, with when and how long.
        for node in flow.nodes:
            for run in node.handlers:
                if run.name != TELL:
                    assert run.state == trace.HANDLED, (node.event.event_type, run.name, run.state)
                    assert run.inbox.processed_at is not None and run.inbox.duration_ms is not None

    # Fixed: retry the group from the failed-message console; the trace completes.
    with RelayThread(_relay()), in_process_worker(settings, COMMERCE):
        console_url = reverse("admin:events_failedmessagegroup_changelist")
        listed = staff.get(console_url).content.decode()
        assert letter.fingerprint[:12] in listed and "tell_order_confirmed" in listed
        staff.post(console_url, {"group": letter.fingerprint, "action": "retry"})
        wait_for(
            lambda: InboxEntry.objects.filter(handler=TELL, dead_lettered=False).exists(),
            timeout=60,
            message="handled after the fix",
        )
        flow = settled(order_id)
    tell = next(h for n in flow.nodes for h in n.handlers if h.name == TELL)
    assert tell.state == trace.HANDLED and [d.status for d in tell.dead_letters] == [DeadLetter.Status.REPLAYED]
    page = staff.get(reverse("admin:events_trace_changelist"), {"q": order_id}).content.decode()
    assert "badge problem" not in page and "Nothing in flight" in page


def _relay() -> Any:
    from events.relay import Relay

    return Relay(wake_address="", poll_seconds=0.05)


def test_what_is_in_flight_stands_out(staff: Client) -> None:
    event = publish(Ping, {"text": "hello"}, version="1.0", correlation_id="flow-in-flight")
    url = reverse("admin:events_trace_changelist")

    flow = trace.find("flow-in-flight")
    assert [n.state for n in flow.nodes] == ["committed, not published"]
    assert {h.state for h in flow.nodes[0].handlers} == {trace.UNPUBLISHED}
    page = staff.get(url, {"q": str(event.event_id)}).content.decode()
    assert "Still in flight" in page and '<span class="badge in-flight">committed, not published</span>' in page

    StoredEvent.objects.filter(pk=event.pk).update(published_at="2026-01-01T00:00:00Z")
    InboxEntry.objects.create(source=event.source, event_id=str(event.event_id), handler="tests.support.ping_v1_handler")
    flow = trace.find("flow-in-flight")
    states = {h.short_name: h.state for h in flow.nodes[0].handlers}
    assert states == {"ping_v1_handler": trace.HANDLED, "ping_v2_handler": trace.WAITING}
    assert flow.in_flight == [f"#{event.pk} Ping → testsvc ping_v2_handler: waiting"]
    page = staff.get(url, {"q": "flow-in-flight"}).content.decode()
    assert '<span class="badge in-flight">waiting</span>' in page


def test_a_user_is_traced_through_their_own_events_and_their_orders(staff: Client) -> None:
    catalogue()
    ada = customer()
    from orders.services import order_place

    order = order_place(customer=ada, items=[("P001", 1)], shipping_address=ADDRESS)

    for query in (ada.username, str(ada.pk), f"user-{ada.pk}"):
        flow = trace.find(query)
        assert {n.event.event_type for n in flow.nodes} >= {"UserRegistered", "OrderPlaced"}, query
    assert {n.event.subject for n in trace.find(order.id).nodes} == {order.id}
    page = staff.get(reverse("admin:events_trace_changelist"), {"q": "nobody-like-this"}).content.decode()
    assert "No event matches" in page


def test_the_trace_page_is_for_staff_only(client: Client) -> None:
    response = client.get(reverse("admin:events_trace_changelist"), {"q": "x"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
