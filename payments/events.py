from decimal import Decimal

from events import EventSchema, event_type


class PaymentCapturedV1(EventSchema):
    orderId: str
    paymentId: str
    amount: Decimal
    currency: str


class PaymentFailedV1(EventSchema):
    orderId: str
    reason: str


class PaymentRefundedV1(EventSchema):
    orderId: str
    paymentId: str
    amount: Decimal
    currency: str


PaymentCaptured = event_type("payments", "PaymentCaptured", versions={"1.0": PaymentCapturedV1})
PaymentFailed = event_type("payments", "PaymentFailed", versions={"1.0": PaymentFailedV1})
PaymentRefunded = event_type("payments", "PaymentRefunded", versions={"1.0": PaymentRefundedV1})
