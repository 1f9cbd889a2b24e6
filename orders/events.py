from decimal import Decimal
from typing import Any

from pydantic import Field

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


class OrderPlacedV2_2(OrderPlacedV2):
    """2.1 plus what a payment needs: the order's total and its currency. Orders publishes this one."""

    total: Decimal = Field(ge=0, decimal_places=2)
    currency: str = Field(min_length=3, max_length=3)


OrderPlaced = event_type("orders", "OrderPlaced", versions={"1.0": OrderPlacedV1, "2.1": OrderPlacedV2, "2.2": OrderPlacedV2_2})


@OrderPlaced.downcaster("2.2", "2.1")
def order_placed_2_2_to_2_1(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in ("total", "currency")}


@OrderPlaced.downcaster("2.1", "1.0")
def order_placed_2_1_to_1_0(data: dict[str, Any]) -> dict[str, Any]:
    if not data.get("userId"):
        raise ValueError("2.1 event carries no userId, so it has no exact 1.0 view")
    return {"orderId": data["orderId"], "userId": data["userId"], "orderStatus": data["status"]}


class OrderConfirmedV1(EventSchema):
    orderId: str
    userId: str
    total: Decimal
    currency: str


class OrderCancelledV1(EventSchema):
    orderId: str
    userId: str
    reason: str


OrderConfirmed = event_type("orders", "OrderConfirmed", versions={"1.0": OrderConfirmedV1})
OrderCancelled = event_type("orders", "OrderCancelled", versions={"1.0": OrderCancelledV1})
