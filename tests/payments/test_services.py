"""Charging: once per order, the provider's failure rate, latency and outage, refunds as compensation."""

from decimal import Decimal
from typing import Any

import pytest

from events.models import StoredEvent
from payments import provider
from payments.models import Payment, ProviderSettings
from payments.provider import ProviderTimeout, ProviderUnavailable
from payments.services import payment_charge, payment_for_order, payment_refund_for_order

pytestmark = pytest.mark.django_db


def charge(order_id: str = "ORD-A", **kwargs: Any) -> Payment:
    return payment_charge(order_id=order_id, amount=Decimal("10.00"), currency="EUR", via="http", request_data={}, **kwargs)


def test_an_order_is_charged_once() -> None:
    ProviderSettings.objects.create(pk=1, latency_ms=0)
    first = charge()
    assert first.status == "captured" and first.provider_reference.startswith("ch_")
    assert charge().pk == first.pk and Payment.objects.count() == 1


def test_the_provider_declines_at_its_failure_rate_and_can_be_down() -> None:
    ProviderSettings.objects.create(pk=1, failure_rate=1.0, latency_ms=0)
    assert charge().status == "declined"
    ProviderSettings.objects.filter(pk=1).update(down=True)
    with pytest.raises(ProviderUnavailable, match="down"):
        charge("ORD-B")
    assert not Payment.objects.filter(order_id="ORD-B").exists()


def test_a_provider_slower_than_the_deadline_charges_nothing() -> None:
    ProviderSettings.objects.create(pk=1, latency_ms=300)
    before = provider.calls["timed_out"]
    with pytest.raises(ProviderTimeout, match="within 0.05 s; nothing was charged"):
        charge(timeout=0.05)
    assert provider.calls["timed_out"] == before + 1 and not Payment.objects.exists()


def test_the_environment_sets_the_provider_until_the_admin_does(settings: Any) -> None:
    settings.PAYMENTS_PROVIDER_FAILURE_RATE, settings.PAYMENTS_PROVIDER_LATENCY_MS, settings.PAYMENTS_PROVIDER_DOWN = 0.5, 7, True
    current = ProviderSettings.current()
    assert (current.failure_rate, current.latency_ms, current.down) == (0.5, 7, True)
    ProviderSettings.objects.create(pk=1, failure_rate=0.1, latency_ms=0)
    assert ProviderSettings.current().failure_rate == 0.1


def test_a_cancelled_order_is_refunded_or_never_charged() -> None:
    ProviderSettings.objects.create(pk=1, latency_ms=0)
    payment_for_order(order_id="ORD-A", amount=Decimal("10.00"), currency="EUR", order_data={})
    assert payment_refund_for_order(order_id="ORD-A").status == "refunded"
    assert payment_refund_for_order(order_id="ORD-A").status == "refunded"  # once
    assert [e.event_type for e in StoredEvent.objects.filter(subject="ORD-A")] == ["PaymentCaptured", "PaymentRefunded"]

    payment_refund_for_order(order_id="ORD-B")  # cancelled before payments saw it
    assert payment_for_order(order_id="ORD-B", amount=Decimal("10.00"), currency="EUR", order_data={}).status == "cancelled"
    assert not StoredEvent.objects.filter(subject="ORD-B").exists()
