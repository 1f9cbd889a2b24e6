"""The orders API: placing and cancelling need a logged-in customer; reading an order is what inventory calls back."""

import base64
from typing import Any

import pytest
from django.test import Client

from events.models import StoredEvent
from orders.models import OrderSummary
from tests.commerce import ADDRESS, catalogue, customer

pytestmark = pytest.mark.django_db

BODY = {"items": [{"productId": "P001", "quantity": 2}], "shippingAddress": ADDRESS}


def basic(username: str, password: str = "pw-correct-horse-42") -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


@pytest.fixture
def ada() -> Any:
    catalogue()
    return customer()


def test_placing_an_order_needs_a_customer(client: Client, ada: Any) -> None:
    response = client.post("/api/orders/", BODY, content_type="application/json")
    assert response.status_code == 401 and "Authorization" in response.json()["detail"]
    wrong = client.post("/api/orders/", BODY, content_type="application/json", **basic("ada", "wrong"))
    assert wrong.status_code == 401
    assert not StoredEvent.objects.filter(event_type="OrderPlaced").exists()


def test_a_customer_may_place_an_order_with_an_api_token(client: Client, ada: Any) -> None:
    from accounts.services import api_token_create

    _, key = api_token_create(user=ada, name="shop app")

    response = client.post("/api/orders/", BODY, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 201, response.content
    assert response.json()["userId"] == str(ada.pk)


def test_a_customer_places_an_order_and_reads_it_back(client: Client, ada: Any) -> None:
    response = client.post("/api/orders/", BODY, content_type="application/json", **basic("ada"))
    assert response.status_code == 201, response.content
    order = response.json()
    assert order["status"] == "placed" and order["userId"] == str(ada.pk) and order["total"] == "25.00"
    assert order["version"] == 1 and order["payment"] == "pending"

    fetched = client.get(f"/api/orders/{order['orderId']}", **basic("ada"))
    assert fetched.status_code == 200 and fetched.json() == order
    assert client.get(f"/api/orders/{order['orderId']}").status_code == 401
    listed = client.get("/api/orders/", **basic("ada")).json()
    assert [o["orderId"] for o in listed] == [order["orderId"]] and listed[0]["status"] == "placed"


def test_bad_orders_get_a_422_that_says_what_is_wrong(client: Client, ada: Any) -> None:
    unknown = client.post(
        "/api/orders/", {**BODY, "items": [{"productId": "NOPE", "quantity": 1}]}, content_type="application/json", **basic("ada")
    )
    assert unknown.status_code == 422 and "No such product: NOPE" in unknown.json()["detail"][0]["msg"]
    zero = client.post(
        "/api/orders/", {**BODY, "items": [{"productId": "P001", "quantity": 0}]}, content_type="application/json", **basic("ada")
    )
    assert zero.status_code == 422
    no_address = client.post("/api/orders/", {"items": BODY["items"]}, content_type="application/json", **basic("ada"))
    assert no_address.status_code == 422
    assert not OrderSummary.objects.exists()


def test_an_unknown_order_is_a_404(client: Client, ada: Any) -> None:
    response = client.get("/api/orders/ORD-NOPE", **basic("ada"))
    assert response.status_code == 404 and response.json() == {"detail": "no order 'ORD-NOPE'"}


def test_an_order_is_read_by_its_customer_and_by_the_services_only(client: Client, ada: Any, settings: Any) -> None:
    from accounts.services import user_register

    user_register(username="eve", email="eve@example.com", password="pw-correct-horse-42")
    order_id = client.post("/api/orders/", BODY, content_type="application/json", **basic("ada")).json()["orderId"]

    assert client.get(f"/api/orders/{order_id}", **basic("eve")).status_code == 404
    as_service = client.get(f"/api/orders/{order_id}", HTTP_X_SERVICE_KEY=settings.SERVICE_API_KEY)
    assert as_service.status_code == 200 and as_service.json()["orderId"] == order_id
    assert client.get(f"/api/orders/{order_id}", HTTP_X_SERVICE_KEY="guess").status_code == 401


def test_a_customer_cancels_their_own_order_only(client: Client, ada: Any) -> None:
    order_id = client.post("/api/orders/", BODY, content_type="application/json", **basic("ada")).json()["orderId"]
    customer("eve")
    other = client.post(f"/api/orders/{order_id}/cancel", {"reason": "mine now"}, content_type="application/json", **basic("eve"))
    assert other.status_code == 404

    response = client.post(
        f"/api/orders/{order_id}/cancel", {"reason": "changed my mind"}, content_type="application/json", **basic("ada")
    )
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["reason"] == "changed my mind"
    cancelled = StoredEvent.objects.get(subject=order_id, event_type="OrderCancelled")
    assert cancelled.sequence == 2 and cancelled.data["reason"] == "changed my mind"
