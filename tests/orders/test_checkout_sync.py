"""The request-driven checkout against a live HTTP server: orders → payments → notifications over HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from events.models import StoredEvent
from notifications.models import Notification
from orders.models import OrderSummary
from payments import provider
from payments.models import Payment, ProviderSettings
from tests.commerce import ADDRESS, catalogue, customer
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"items": [{"productId": "P001", "quantity": 2}], "shippingAddress": ADDRESS}
AUTH = ("ada", "pw-correct-horse-42")


@pytest.fixture
def shop(live_server: Any, settings: Any) -> str:
    settings.PAYMENTS_BASE_URL = settings.NOTIFICATIONS_BASE_URL = live_server.url
    settings.SERVICE_CONNECT_TIMEOUT, settings.SERVICE_READ_TIMEOUT = 0.3, 0.6
    catalogue()
    customer()
    ProviderSettings.objects.create(pk=1, latency_ms=0)
    return live_server.url


def checkout(url: str) -> httpx.Response:
    return httpx.post(f"{url}/api/checkout/sync", json=BODY, auth=AUTH, timeout=10)


def nothing_remains() -> None:
    assert not Payment.objects.exists(), "a charge remains"
    assert not StoredEvent.objects.filter(event_type="OrderPlaced").exists(), "an event remains"
    assert not OrderSummary.objects.exists(), "an order remains"


def test_a_paid_order_is_placed_and_the_customer_notified(shop: str) -> None:
    response = checkout(shop)

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "placed" and order["total"] == "25.00" and order["notified"] is True
    payment = Payment.objects.get(order_id=order["orderId"])
    assert (payment.status, payment.via, str(payment.amount)) == ("captured", "http", "25.00")
    placed = StoredEvent.objects.get(event_type="OrderPlaced")
    assert placed.subject == order["orderId"] and placed.event_version == "2.2"
    note = Notification.objects.get(kind="order-received")
    assert note.recipient == "ada@example.com" and note.event_id == f"http:{order['orderId']}:order-received"


def test_a_declined_payment_is_a_402_and_places_nothing(shop: str) -> None:
    ProviderSettings.objects.filter(pk=1).update(failure_rate=1.0)
    response = checkout(shop)
    assert response.status_code == 402 and response.json() == {"detail": "payment declined: card declined by the provider"}
    assert not StoredEvent.objects.filter(event_type="OrderPlaced").exists() and not OrderSummary.objects.exists()


def test_the_checkout_needs_a_customer(shop: str) -> None:
    response = httpx.post(f"{shop}/api/checkout/sync", json=BODY, timeout=10)
    assert response.status_code == 401
    nothing_remains()


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port nothing listens on: payments is down."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    yield port


@pytest.fixture
def unresponsive_port() -> Iterator[int]:
    """A port whose accept queue is full: connections hang until the client's connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, listener]:
        sock.close()


def test_payments_down_is_a_503_with_the_reason_and_leaves_nothing(shop: str, settings: Any, refusing_port: int) -> None:
    settings.PAYMENTS_BASE_URL = f"http://127.0.0.1:{refusing_port}"
    response = checkout(shop)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("payments is unreachable") and "nothing was charged" in response.json()["detail"]
    nothing_remains()


def test_payments_not_accepting_connections_is_a_503_at_the_connect_timeout(
    shop: str, settings: Any, unresponsive_port: int
) -> None:
    settings.PAYMENTS_BASE_URL = f"http://127.0.0.1:{unresponsive_port}"
    response = checkout(shop)
    assert response.status_code == 503
    assert response.json() == {"detail": "payments is unreachable: no connection within 0.3 s; nothing was charged"}
    nothing_remains()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: payments hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def test_payments_slower_than_the_read_timeout_is_a_503_at_the_timeout(shop: str, settings: Any, silent_port: int) -> None:
    settings.PAYMENTS_BASE_URL = f"http://127.0.0.1:{silent_port}"
    response = checkout(shop)
    assert response.status_code == 503
    assert response.json() == {"detail": "payments did not answer within 0.6 s; nothing was charged"}
    nothing_remains()


def test_a_slow_payment_provider_makes_payments_give_up_before_the_caller_does(shop: str, settings: Any) -> None:
    """Payments gets the caller's timeout (Request-Timeout) and charges nothing it could not answer for in time."""
    # the default read timeout: payments' share of it leaves 0.4 s to answer, room enough on a busy machine
    settings.SERVICE_READ_TIMEOUT = 2.0
    ProviderSettings.objects.filter(pk=1).update(latency_ms=5000)
    timed_out = provider.calls["timed_out"]

    response = checkout(shop)

    assert response.status_code == 503
    assert response.json() == {
        "detail": "payments answered 503: the payment provider did not answer within 1.60 s; nothing was charged"
    }
    # payments gave up on the provider too, before its own deadline, without charging
    wait_for(lambda: provider.calls["timed_out"] == timed_out + 1, message="payments' provider call to end")
    nothing_remains()


def test_the_payments_api_is_for_services_and_charges_once_per_order(shop: str) -> None:
    charge = {"orderId": "ORD-X", "amount": "5.00", "currency": "EUR"}
    assert httpx.post(f"{shop}/api/payments/charges", json=charge, timeout=10).status_code == 401
    headers = {"X-Service-Key": "wrong"}
    assert httpx.post(f"{shop}/api/payments/charges", json=charge, headers=headers, timeout=10).status_code == 401
    from django.conf import settings

    headers = {"X-Service-Key": settings.SERVICE_API_KEY, "Idempotency-Key": "ORD-X"}
    first = httpx.post(f"{shop}/api/payments/charges", json=charge, headers=headers, timeout=10)
    again = httpx.post(f"{shop}/api/payments/charges", json=charge, headers=headers, timeout=10)
    assert (first.status_code, again.status_code) == (201, 200) and first.json() == again.json()
    assert Payment.objects.count() == 1


def test_a_charge_whose_order_cannot_be_placed_is_given_back(shop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ValidationError

    from orders import checkout as checkout_module

    def catalogue_changed(**kwargs: Any) -> None:
        raise ValidationError({"items": "No such product: P001."})

    monkeypatch.setattr(checkout_module, "order_place", catalogue_changed)  # fails after the charge
    response = checkout(shop)

    assert response.status_code == 422
    payment = Payment.objects.get()
    assert (payment.status, payment.reason) == ("refunded", "voided: the order was not placed")
    assert not StoredEvent.objects.exclude(event_type="UserRegistered").exists() and not OrderSummary.objects.exists()
