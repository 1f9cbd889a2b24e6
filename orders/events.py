from typing import Any

from events import EventSchema, event_type


class OrderItem(EventSchema):
    productId: str
    quantity: int


class ShippingAddress(EventSchema):
    city: str
    pincode: str


class OrderPlacedV1(EventSchema):
    """Event notification: who ordered what id; consumers call back for details."""

    orderId: str
    userId: str
    orderStatus: str


class OrderPlacedV2(EventSchema):
    """Event-carried state transfer: the order as consumers need it."""

    orderId: str
    status: str
    items: list[OrderItem]
    shippingAddress: ShippingAddress
    userId: str | None = None


OrderPlaced = event_type("orders", "OrderPlaced", versions={"1.0": OrderPlacedV1, "2.1": OrderPlacedV2})


@OrderPlaced.downcaster("2.1", "1.0")
def order_placed_2_1_to_1_0(data: dict[str, Any]) -> dict[str, Any]:
    if not data.get("userId"):
        raise ValueError("2.1 event carries no userId, so it has no exact 1.0 view")
    return {"orderId": data["orderId"], "userId": data["userId"], "orderStatus": data["status"]}
