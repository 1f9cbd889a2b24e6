"""The request-driven checkout: orders calls payments over HTTP, waits, then calls notifications.

For comparison with the event-driven checkout; both use the same domain services, only the
transport differs. Each call has a connect and a read timeout. Failures are fast and say why:
payments unreachable → `CheckoutUnavailable` within the connect timeout; payments slower than the
read timeout → `CheckoutUnavailable` at the timeout (payments itself charges nothing it cannot
answer for in time, see payments/api.py). In both cases no order, no event and no charge remain:
the order is placed only after the payment is captured (and should placing it fail, the charge
is voided through the payments API before the answer).

Retries: only where the call is idempotent. The notification carries an Idempotency-Key and is
retried; the charge carries one too (the order id), but it is not retried within the request, so
that an unreachable payments service costs one connect timeout, not several.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from orders.domain import Order
from orders.services import new_order_id, order_place, order_quote

logger = logging.getLogger(__name__)


class CheckoutUnavailable(Exception):
    """A service the checkout depends on is down or too slow (HTTP 503)."""


class PaymentDeclined(Exception):
    """The payment was refused (HTTP 402)."""


@dataclass(frozen=True)
class CheckoutResult:
    order: Order
    notified: bool


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(settings.SERVICE_READ_TIMEOUT, connect=settings.SERVICE_CONNECT_TIMEOUT)


def _headers(key: str) -> dict[str, str]:
    return {
        "X-Service-Key": settings.SERVICE_API_KEY,
        "Idempotency-Key": key,
        "Request-Timeout": f"{settings.SERVICE_READ_TIMEOUT:g}",
    }


def _charge(order_id: str, total: str, currency: str) -> None:
    try:
        with httpx.Client(base_url=settings.PAYMENTS_BASE_URL, timeout=_timeout()) as client:
            response = client.post(
                "/api/payments/charges",
                json={"orderId": order_id, "amount": total, "currency": currency},
                headers=_headers(order_id),
            )
    except httpx.ConnectTimeout:
        raise CheckoutUnavailable(
            f"payments is unreachable: no connection within {settings.SERVICE_CONNECT_TIMEOUT:g} s; nothing was charged"
        ) from None
    except httpx.ConnectError as exc:
        raise CheckoutUnavailable(f"payments is unreachable ({exc}); nothing was charged") from None
    except httpx.TimeoutException:
        raise CheckoutUnavailable(
            f"payments did not answer within {settings.SERVICE_READ_TIMEOUT:g} s; nothing was charged"
        ) from None
    except httpx.HTTPError as exc:
        raise CheckoutUnavailable(f"payments failed: {exc}") from None
    if response.status_code == 402:
        raise PaymentDeclined(response.json().get("detail", "payment declined"))
    if response.status_code not in (200, 201):
        raise CheckoutUnavailable(f"payments answered {response.status_code}: {_detail(response)}")


def _void(order_id: str) -> None:
    transport = httpx.HTTPTransport(retries=2)  # idempotent: voiding twice gives back one charge
    try:
        with httpx.Client(base_url=settings.PAYMENTS_BASE_URL, timeout=_timeout(), transport=transport) as client:
            client.post(f"/api/payments/charges/{order_id}/void", headers=_headers(f"{order_id}:void"))
    except httpx.HTTPError:
        logger.exception("could not give back the charge of %s, whose order was not placed", order_id)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))
    except ValueError:
        return response.text[:200]


def _notify(order: Order, email: str) -> bool:
    transport = httpx.HTTPTransport(retries=2)  # connection failures only; the key makes a resend harmless
    payload = {
        "recipient": email,
        "kind": "order-received",
        "subject": f"Order {order.id} received",
        "body": f"We have your order {order.id} and your payment of {order.total} {order.currency}.",
    }
    for _ in range(2):
        try:
            with httpx.Client(base_url=settings.NOTIFICATIONS_BASE_URL, timeout=_timeout(), transport=transport) as client:
                response = client.post("/api/notifications/", json=payload, headers=_headers(f"{order.id}:order-received"))
            if response.status_code in (200, 201):
                return True
        except httpx.HTTPError:
            pass
    return False


def checkout_sync(
    *, customer: AbstractBaseUser, items: Sequence[tuple[str, int]], shipping_address: dict[str, str]
) -> CheckoutResult:
    quote = order_quote(items=items)
    order_id = new_order_id()
    _charge(order_id, str(quote.total), quote.currency)
    try:
        order = order_place(customer=customer, items=items, shipping_address=shipping_address, order_id=order_id)
    except BaseException:
        _void(order_id)  # charged, but no order: give the charge back before answering
        raise
    return CheckoutResult(order=order, notified=_notify(order, getattr(customer, "email", "")))
