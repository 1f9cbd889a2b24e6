from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from events import streams
from events.streams import NewEvent
from shipping.events import OrderShipped, OrderShippedV1, ShipmentCreated, ShipmentCreatedV1
from shipping.models import Shipment, ShippingOrder


class AddressNotYetKnown(Exception):
    """OrderConfirmed came before OrderPlaced was handled here; the bus retries it shortly."""


class CannotShip(Exception):
    pass


@transaction.atomic
def shipping_order_record(*, data: dict[str, Any]) -> ShippingOrder:
    address = data["shippingAddress"]
    shipping_order, _ = ShippingOrder.objects.get_or_create(
        order_id=data["orderId"],
        defaults={
            "user_id": data.get("userId") or "",
            "city": address["city"],
            "pincode": address["pincode"],
            "items": data["items"],
            "event_data": data,
        },
    )
    return shipping_order


@transaction.atomic
def shipment_create(*, order_id: str) -> Shipment | None:
    """OrderConfirmed: create the shipment from the address carried by OrderPlaced 2.1, calling no one."""
    existing = Shipment.objects.filter(order_id=order_id).first()
    if existing is not None:
        return existing
    shipping_order = ShippingOrder.objects.filter(order_id=order_id).first()
    if shipping_order is None:
        raise AddressNotYetKnown(f"no OrderPlaced handled yet for {order_id}")
    if shipping_order.cancelled:
        return None
    try:
        with transaction.atomic():
            shipment = Shipment.objects.create(
                order_id=order_id, user_id=shipping_order.user_id, city=shipping_order.city, pincode=shipping_order.pincode
            )
    except IntegrityError:
        return Shipment.objects.get(order_id=order_id)
    streams.append_to_end(
        order_id,
        [
            NewEvent(
                ShipmentCreated,
                ShipmentCreatedV1(orderId=order_id, shipmentId=str(shipment.id), city=shipment.city, pincode=shipment.pincode),
            )
        ],
    )
    return shipment


@transaction.atomic
def shipment_ship(*, shipment_id: str) -> Shipment:
    """The carrier has the parcel: OrderShipped."""
    shipment = Shipment.objects.select_for_update().get(pk=shipment_id)
    if shipment.status == Shipment.Status.SHIPPED:
        return shipment
    if shipment.status != Shipment.Status.CREATED:
        raise CannotShip(f"the shipment of {shipment.order_id} is {shipment.status}")
    shipment.status = Shipment.Status.SHIPPED
    shipment.tracking_number = f"TRK{shipment.id.hex[:12].upper()}"
    shipment.shipped_at = timezone.now()
    shipment.save(update_fields=["status", "tracking_number", "shipped_at"])
    streams.append_to_end(
        shipment.order_id,
        [
            NewEvent(
                OrderShipped,
                OrderShippedV1(
                    orderId=shipment.order_id,
                    userId=shipment.user_id,
                    shipmentId=str(shipment.id),
                    trackingNumber=shipment.tracking_number,
                ),
            )
        ],
    )
    return shipment


@transaction.atomic
def shipping_order_cancel(*, order_id: str) -> None:
    """OrderCancelled: a shipment not shipped yet is cancelled; an order not confirmed yet never ships."""
    # Cancelled before OrderPlaced reached shipping: remember it, so that the order never ships.
    ShippingOrder.objects.get_or_create(order_id=order_id, defaults={"city": "", "pincode": "", "cancelled": True})
    ShippingOrder.objects.filter(order_id=order_id).update(cancelled=True)
    Shipment.objects.filter(order_id=order_id, status=Shipment.Status.CREATED).update(status=Shipment.Status.CANCELLED)
