from events import Event, subscribe
from orders.events import OrderCancelled, OrderCancelledV1, OrderConfirmed, OrderConfirmedV1, OrderPlaced, OrderPlacedV2
from shipping.services import shipment_create, shipping_order_cancel, shipping_order_record


@subscribe(OrderPlaced, version="2.1", service="shipping")
def record_address(event: Event[OrderPlacedV2]) -> None:
    shipping_order_record(data=event.data.model_dump(mode="json"))


@subscribe(OrderConfirmed, version="1.0", service="shipping")
def create_shipment(event: Event[OrderConfirmedV1]) -> None:
    shipment_create(order_id=event.data.orderId)


@subscribe(OrderCancelled, version="1.0", service="shipping")
def cancel_shipment(event: Event[OrderCancelledV1]) -> None:
    shipping_order_cancel(order_id=event.data.orderId)
