"""Shipping: the shipment comes from the address OrderPlaced 2.1 carried; once per order; never for a cancelled order."""

import pytest

from events.models import StoredEvent
from shipping.models import Shipment
from shipping.services import (
    AddressNotYetKnown,
    CannotShip,
    shipment_create,
    shipment_ship,
    shipping_order_cancel,
    shipping_order_record,
)

pytestmark = pytest.mark.django_db

PLACED = {
    "orderId": "ORD-A",
    "status": "Placed",
    "items": [{"productId": "P1", "quantity": 1}],
    "shippingAddress": {"city": "Pune", "pincode": "411001"},
    "userId": "7",
}


def test_a_confirmed_order_gets_one_shipment_to_the_carried_address_then_ships() -> None:
    with pytest.raises(AddressNotYetKnown):
        shipment_create(order_id="ORD-A")  # OrderConfirmed before OrderPlaced: the bus retries
    shipping_order_record(data=PLACED)
    shipment = shipment_create(order_id="ORD-A")
    assert shipment is not None and (shipment.city, shipment.pincode) == ("Pune", "411001")
    assert shipment_create(order_id="ORD-A") == shipment and Shipment.objects.count() == 1
    shipped = shipment_ship(shipment_id=str(shipment.pk))
    assert shipped.status == "shipped" and shipped.tracking_number.startswith("TRK")
    assert shipment_ship(shipment_id=str(shipment.pk)).tracking_number == shipped.tracking_number
    kinds = list(StoredEvent.objects.filter(subject="ORD-A").values_list("event_type", "sequence"))
    assert kinds == [("ShipmentCreated", 1), ("OrderShipped", 2)]


def test_a_cancelled_order_never_ships_whenever_the_cancellation_arrives() -> None:
    shipping_order_cancel(order_id="ORD-B")  # before OrderPlaced reached shipping
    shipping_order_record(data={**PLACED, "orderId": "ORD-B"})
    assert shipment_create(order_id="ORD-B") is None

    shipping_order_record(data=PLACED)
    shipment = shipment_create(order_id="ORD-A")
    shipping_order_cancel(order_id="ORD-A")
    with pytest.raises(CannotShip, match="cancelled"):
        shipment_ship(shipment_id=str(shipment.pk))
