"""The Order aggregate: its state is the fold of its events; the saga's decisions are pure functions of it.

An order's stream (subject = order id, sequence = version) holds the events of every service that
acts on it: OrderPlaced, PaymentCaptured / PaymentFailed, StockReserved / OutOfStock,
OrderConfirmed, OrderCancelled, PaymentRefunded, StockReleased, ShipmentCreated, OrderShipped.
An event type this code does not know advances the version and changes nothing else, so a newer
writer never breaks an older reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

PLACED, CONFIRMED, CANCELLED, SHIPPED = "placed", "confirmed", "cancelled", "shipped"
PENDING = "pending"


@dataclass(frozen=True)
class Line:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class Order:
    id: str
    version: int = 0
    status: str = ""  # "" until placed
    user_id: str = ""
    items: tuple[Line, ...] = ()
    shipping_address: dict[str, str] = field(default_factory=dict)
    total: Decimal = Decimal("0")
    currency: str = ""
    payment: str = PENDING  # captured | failed | refunded
    payment_id: str = ""
    stock: str = PENDING  # reserved | out_of_stock | released
    shipment_id: str = ""
    tracking_number: str = ""
    reason: str = ""  # why the payment failed, the stock was missing, or the order was cancelled
    placed_at: datetime | None = None
    changed_at: datetime | None = None

    @property
    def exists(self) -> bool:
        return self.version > 0

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.items)


def changes(event_type: str, data: dict[str, Any], sequence: int, timestamp: datetime) -> dict[str, Any]:
    """What one more event of its stream changes in an order."""
    result: dict[str, Any] = {"version": sequence, "changed_at": timestamp}
    if event_type == "OrderPlaced":
        result.update(
            status=PLACED,
            user_id=str(data.get("userId") or ""),
            items=tuple(Line(item["productId"], int(item["quantity"])) for item in data.get("items", ())),
            shipping_address=dict(data.get("shippingAddress") or {}),
            total=Decimal(str(data.get("total", "0"))),
            currency=data.get("currency", ""),
            placed_at=timestamp,
        )
    elif event_type == "PaymentCaptured":
        result.update(payment="captured", payment_id=data["paymentId"])
    elif event_type == "PaymentFailed":
        result.update(payment="failed", reason=data["reason"])
    elif event_type == "PaymentRefunded":
        result["payment"] = "refunded"
    elif event_type == "StockReserved":
        result["stock"] = "reserved"
    elif event_type == "OutOfStock":
        result.update(stock="out_of_stock", reason="out of stock: " + ", ".join(data["productIds"]))
    elif event_type == "StockReleased":
        result["stock"] = "released"
    elif event_type == "OrderConfirmed":
        result["status"] = CONFIRMED
    elif event_type == "OrderCancelled":
        result.update(status=CANCELLED, reason=data["reason"])
    elif event_type == "ShipmentCreated":
        result["shipment_id"] = data["shipmentId"]
    elif event_type == "OrderShipped":
        result.update(status=SHIPPED, tracking_number=data["trackingNumber"])
    return result


def apply(order: Order, event_type: str, data: dict[str, Any], sequence: int, timestamp: datetime) -> Order:
    """The order after one more event of its stream."""
    return replace(order, **changes(event_type, data, sequence, timestamp))


def fold(order_id: str, events: Iterable[tuple[str, dict[str, Any], int, datetime]]) -> Order:
    state: dict[str, Any] = {"id": order_id}
    for event_type, data, sequence, timestamp in events:
        state.update(changes(event_type, data, sequence, timestamp))
    return Order(**state)


# --- The saga: what the order does next, given what has happened to it.


@dataclass(frozen=True)
class Decision:
    event: str  # "OrderConfirmed" | "OrderCancelled"
    reason: str = ""


def next_step(order: Order) -> Decision | None:
    """Confirm once payment and stock are both in, in whichever order; cancel on a failure of either."""
    if order.status != PLACED:
        return None
    if order.payment == "failed":
        return Decision("OrderCancelled", f"payment failed: {order.reason}")
    if order.stock == "out_of_stock":
        return Decision("OrderCancelled", order.reason)
    if order.payment == "captured" and order.stock == "reserved":
        return Decision("OrderConfirmed")
    return None


class CannotCancel(Exception):
    pass


def can_cancel(order: Order) -> bool:
    """True if a cancel changes something; raises CannotCancel if the order is past cancelling."""
    if not order.exists:
        raise CannotCancel(f"order {order.id} does not exist")
    if order.status == SHIPPED:
        raise CannotCancel(f"order {order.id} has shipped and can no longer be cancelled")
    return order.status in (PLACED, CONFIRMED)
