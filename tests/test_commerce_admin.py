"""Every commerce page of the admin opens for a superuser."""

import pytest
from django.test import Client
from django.urls import reverse

from payments.models import ProviderSettings
from tests.commerce import catalogue

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "model",
    [
        "orders_product",
        "orders_ordersummary",
        "payments_payment",
        "payments_providersettings",
        "inventory_stock",
        "inventory_reservation",
        "shipping_shipment",
        "shipping_shippingorder",
    ],
)
def test_the_commerce_admin_lists_open(admin_client: Client, model: str) -> None:
    catalogue()
    assert admin_client.get(reverse(f"admin:{model}_changelist")).status_code == 200


def test_the_payment_provider_is_set_in_the_admin(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:payments_providersettings_add"), {"failure_rate": "0.25", "latency_ms": "150", "down": "on"}
    )
    assert response.status_code == 302
    current = ProviderSettings.current()
    assert (current.pk, current.failure_rate, current.latency_ms, current.down) == (1, 0.25, 150, True)
    assert admin_client.get(reverse("admin:payments_providersettings_change", args=[1])).status_code == 200
    assert admin_client.get(reverse("admin:payments_providersettings_add")).status_code == 403  # one row only
