"""The checkout saga: each payment or stock fact about an order makes the order decide its next step.

The facts are already in the order's stream (payments and inventory append them there); these
handlers only make the order act on them, so a duplicate delivery or a fact arriving in either
order changes nothing the fold has not decided. The other facts only bring the read model up to date.
"""

from typing import Any

from events import Event, subscribe
from inventory.events import OutOfStock, StockReleased, StockReserved
from orders.services import order_advance, order_project
from payments.events import PaymentCaptured, PaymentFailed, PaymentRefunded
from shipping.events import OrderShipped, ShipmentCreated


@subscribe(PaymentCaptured, version="1.0", service="orders")
def advance_on_payment_captured(event: Event[Any]) -> None:
    order_advance(order_id=event.data.orderId)


@subscribe(PaymentFailed, version="1.0", service="orders")
def advance_on_payment_failed(event: Event[Any]) -> None:
    order_advance(order_id=event.data.orderId)


@subscribe(StockReserved, version="1.0", service="orders")
def advance_on_stock_reserved(event: Event[Any]) -> None:
    order_advance(order_id=event.data.orderId)


@subscribe(OutOfStock, version="1.0", service="orders")
def advance_on_out_of_stock(event: Event[Any]) -> None:
    order_advance(order_id=event.data.orderId)


@subscribe(PaymentRefunded, version="1.0", service="orders")
def project_payment_refunded(event: Event[Any]) -> None:
    order_project(order_id=event.data.orderId)


@subscribe(StockReleased, version="1.0", service="orders")
def project_stock_released(event: Event[Any]) -> None:
    order_project(order_id=event.data.orderId)


@subscribe(ShipmentCreated, version="1.0", service="orders")
def project_shipment_created(event: Event[Any]) -> None:
    order_project(order_id=event.data.orderId)


@subscribe(OrderShipped, version="1.0", service="orders")
def project_order_shipped(event: Event[Any]) -> None:
    order_project(order_id=event.data.orderId)
