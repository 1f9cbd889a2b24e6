from decimal import Decimal

from django.http import HttpRequest
from ninja import Field, Header, Path, Router, Schema, Status

from payments.models import Payment
from payments.provider import ProviderUnavailable
from payments.services import payment_charge, payment_void
from project import api_auth
from project.schemas import BODY_ERRORS, ErrorOut

router = Router(tags=["payments"])

# The share of the caller's timeout the provider may use, leaving time to commit and answer before
# the caller gives up: a charge the caller never hears of must not happen.
DEADLINE_SHARE = 0.8


class ChargeIn(Schema):
    orderId: str = Field(min_length=1, max_length=50)
    amount: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    currency: str = Field(min_length=3, max_length=3)


class ChargeOut(Schema):
    paymentId: int = Field(alias="pk")
    orderId: str = Field(alias="order_id")
    status: str
    amount: Decimal
    currency: str


@router.post(
    "/charges",
    response={201: ChargeOut, 200: ChargeOut, 402: ErrorOut, 409: ErrorOut, 503: ErrorOut, **api_auth.AUTH_ERRORS, **BODY_ERRORS},
    auth=api_auth.SERVICE,
    summary="Charge an order (request-driven checkout)",
)
def charge_create(
    request: HttpRequest,
    payload: ChargeIn,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=100),
    request_timeout: float | None = Header(default=None, alias="Request-Timeout", gt=0, le=300),
) -> Status:
    """Charge once per order: the order id is the idempotency key, so a retried call returns the first outcome (200).

    `Request-Timeout` (seconds) is how long the caller waits; the provider gets a share of it and
    nothing is charged if it takes longer (503).
    """
    if idempotency_key is not None and idempotency_key != payload.orderId:
        return Status(409, {"detail": "the Idempotency-Key must be the order id"})
    existing = Payment.objects.filter(order_id=payload.orderId).first()
    try:
        payment = existing or payment_charge(
            order_id=payload.orderId,
            amount=payload.amount,
            currency=payload.currency,
            via="http",
            request_data=payload.model_dump(mode="json"),
            timeout=request_timeout * DEADLINE_SHARE if request_timeout else None,
        )
    except ProviderUnavailable as exc:
        return Status(503, {"detail": str(exc)})
    if payment.status == Payment.Status.DECLINED:
        return Status(402, {"detail": f"payment declined: {payment.reason}"})
    if payment.status != Payment.Status.CAPTURED:
        return Status(409, {"detail": f"the order's payment is {payment.status}"})
    return Status(200 if existing else 201, payment)


@router.post(
    "/charges/{order_id}/void",
    response={200: ChargeOut, 404: ErrorOut, 503: ErrorOut, **api_auth.AUTH_ERRORS},
    auth=api_auth.SERVICE,
    summary="Give back the charge of an order that was not placed",
)
def charge_void(
    request: HttpRequest, order_id: str = Path(..., min_length=1, max_length=50, pattern=r"^[A-Za-z0-9-]+$")
) -> Status:
    """Idempotent: a charge already given back, or one whose order exists in the event log, is left as it is."""
    try:
        payment = payment_void(order_id=order_id)
    except ProviderUnavailable as exc:
        return Status(503, {"detail": str(exc)})
    if payment is None:
        return Status(404, {"detail": f"no charge for {order_id!r}"})
    return Status(200, payment)
