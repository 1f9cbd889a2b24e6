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


def apply(order: Order, event_type: str, data: dict[str, Any], sequence: int, timestamp: datetime) -> Order:
    """The order after one more event of its stream."""
    changes: dict[str, Any] = {"version": sequence, "changed_at": timestamp}
    if event_type == "OrderPlaced":
        changes.update(
            status=PLACED,
            user_id=str(data.get("userId") or ""),
            items=tuple(Line(item["productId"], int(item["quantity"])) for item in data.get("items", ())),
            shipping_address=dict(data.get("shippingAddress") or {}),
            total=Decimal(str(data.get("total", "0"))),
            currency=data.get("currency", ""),
            placed_at=timestamp,
        )
    elif event_type == "PaymentCaptured":
        changes.update(payment="captured", payment_id=data["paymentId"])
    elif event_type == "PaymentFailed":
        changes.update(payment="failed", reason=data["reason"])
    elif event_type == "PaymentRefunded":
        changes.update(payment="refunded")
    elif event_type == "StockReserved":
        changes.update(stock="reserved")
    elif event_type == "OutOfStock":
        changes.update(stock="out_of_stock", reason="out of stock: " + ", ".join(data["productIds"]))
    elif event_type == "StockReleased":
        changes.update(stock="released")
    elif event_type == "OrderConfirmed":
        changes.update(status=CONFIRMED)
    elif event_type == "OrderCancelled":
        changes.update(status=CANCELLED, reason=data["reason"])
    elif event_type == "ShipmentCreated":
        changes.update(shipment_id=data["shipmentId"])
    elif event_type == "OrderShipped":
        changes.update(status=SHIPPED, tracking_number=data["trackingNumber"])
    return replace(order, **changes)


def fold(order_id: str, events: Iterable[tuple[str, dict[str, Any], int, datetime]]) -> Order:
    order = Order(id=order_id)
    for event_type, data, sequence, timestamp in events:
        order = apply(order, event_type, data, sequence, timestamp)
    return order


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
