from events import Event, subscribe
from inventory.services import stock_release_for_order, stock_reserve_for_order
from orders.events import OrderCancelled, OrderCancelledV1, OrderPlaced, OrderPlacedV1


@subscribe(OrderPlaced, version="1.0", service="inventory")
def reserve_stock(event: Event[OrderPlacedV1]) -> None:
    stock_reserve_for_order(order_id=event.data.orderId, event_data=event.data.model_dump(mode="json"))


@subscribe(OrderCancelled, version="1.0", service="inventory")
def release_stock(event: Event[OrderCancelledV1]) -> None:
    stock_release_for_order(order_id=event.data.orderId)
