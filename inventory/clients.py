"""The call back of event notification: inventory asks the orders API for what OrderPlaced 1.0 leaves out."""

from typing import Any

import httpx
from django.conf import settings


class OrdersApiError(Exception):
    pass


def fetch_order(order_id: str) -> dict[str, Any]:
    timeout = httpx.Timeout(settings.SERVICE_READ_TIMEOUT, connect=settings.SERVICE_CONNECT_TIMEOUT)
    # A GET is idempotent: the transport retries failed connections.
    with httpx.Client(base_url=settings.ORDERS_BASE_URL, timeout=timeout, transport=httpx.HTTPTransport(retries=2)) as client:
        response = client.get(f"/api/orders/{order_id}", headers={"X-Service-Key": settings.SERVICE_API_KEY})
    if response.status_code != 200:
        raise OrdersApiError(f"GET /api/orders/{order_id} answered {response.status_code}: {response.text[:200]}")
    return response.json()
