from events import Event, subscribe
from orders.events import OrderCancelled, OrderCancelledV1, OrderPlaced, OrderPlacedV2_2
from payments.services import payment_for_order, payment_refund_for_order


# A provider outage is retried with backoff (capped at EVENTS_RETRY_BACKOFF_MAX_SECONDS) for about an
# hour with the defaults before the event becomes a dead letter to replay.
@subscribe(OrderPlaced, version="2.2", service="payments", max_attempts=12)
def charge_order(event: Event[OrderPlacedV2_2]) -> None:
    order = event.data
    payment_for_order(
        order_id=order.orderId, amount=order.total, currency=order.currency, order_data=order.model_dump(mode="json")
    )


@subscribe(OrderCancelled, version="1.0", service="payments")
def refund_cancelled_order(event: Event[OrderCancelledV1]) -> None:
    payment_refund_for_order(order_id=event.data.orderId)
