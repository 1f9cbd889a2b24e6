from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from events import streams
from events.streams import NewEvent
from payments import provider
from payments.events import (
    PaymentCaptured,
    PaymentCapturedV1,
    PaymentFailed,
    PaymentFailedV1,
    PaymentRefunded,
    PaymentRefundedV1,
)
from payments.models import Payment


def payment_charge(
    *, order_id: str, amount: Decimal, currency: str, via: str, request_data: dict[str, Any], timeout: float | None = None
) -> Payment:
    """Charge an order once: a second call for the same order returns the first outcome.

    The provider is called outside any transaction of ours when the caller has none (the HTTP
    path), so a slow provider holds no database lock. Raises ProviderUnavailable (down, or slower
    than `timeout`) with nothing charged.
    """
    existing = Payment.objects.filter(order_id=order_id).first()
    if existing is not None:
        return existing
    result = provider.charge(amount=amount, currency=currency, key=order_id, timeout=timeout)
    payment = Payment(
        order_id=order_id,
        status=Payment.Status.CAPTURED if result.captured else Payment.Status.DECLINED,
        amount=amount,
        currency=currency,
        provider_reference=result.reference,
        reason=result.reason,
        via=via,
        request_data=request_data,
    )
    try:
        with transaction.atomic():
            payment.save()
    except IntegrityError:  # charged concurrently for the same order: keep the first, give ours back
        if result.captured:
            provider.refund(reference=result.reference, amount=amount, currency=currency)
        return Payment.objects.get(order_id=order_id)
    return payment


@transaction.atomic
def payment_for_order(*, order_id: str, amount: Decimal, currency: str, order_data: dict[str, Any]) -> Payment:
    """OrderPlaced: charge the order (unless the synchronous checkout already did) and record the outcome in its stream."""
    payment = payment_charge(order_id=order_id, amount=amount, currency=currency, via="event", request_data=order_data)
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.reported or payment.status == Payment.Status.CANCELLED:
        return payment
    if payment.status == Payment.Status.DECLINED:
        fact = NewEvent(PaymentFailed, PaymentFailedV1(orderId=order_id, reason=payment.reason))
    else:
        fact = NewEvent(
            PaymentCaptured,
            PaymentCapturedV1(orderId=order_id, paymentId=str(payment.pk), amount=payment.amount, currency=payment.currency),
        )
    streams.append_to_end(order_id, [fact])
    payment.reported = True
    payment.save(update_fields=["reported", "updated_at"])
    return payment


@transaction.atomic
def payment_refund_for_order(*, order_id: str) -> Payment:
    """OrderCancelled: refund a captured payment; an order not charged yet never will be."""
    payment = Payment.objects.select_for_update().filter(order_id=order_id).first()
    if payment is None:
        return Payment.objects.create(
            order_id=order_id, status=Payment.Status.CANCELLED, amount=Decimal("0"), currency="", via="event", reported=True
        )
    if payment.status != Payment.Status.CAPTURED:
        return payment
    provider.refund(reference=payment.provider_reference, amount=payment.amount, currency=payment.currency)
    payment.status = Payment.Status.REFUNDED
    payment.save(update_fields=["status", "updated_at"])
    streams.append_to_end(
        order_id,
        [
            NewEvent(
                PaymentRefunded,
                PaymentRefundedV1(orderId=order_id, paymentId=str(payment.pk), amount=payment.amount, currency=payment.currency),
            )
        ],
    )
    return payment


@transaction.atomic
def payment_void(*, order_id: str) -> Payment | None:
    """Give back a charge whose order was never placed (the request-driven checkout failed after charging)."""
    payment = Payment.objects.select_for_update().filter(order_id=order_id).first()
    if payment is None or payment.status != Payment.Status.CAPTURED or payment.reported:
        return payment
    provider.refund(reference=payment.provider_reference, amount=payment.amount, currency=payment.currency)
    payment.status = Payment.Status.REFUNDED
    payment.reason = "voided: the order was not placed"
    payment.save(update_fields=["status", "reason", "updated_at"])
    return payment
