from events import EventSchema, event_type


class ShipmentCreatedV1(EventSchema):
    orderId: str
    shipmentId: str
    city: str
    pincode: str


class OrderShippedV1(EventSchema):
    orderId: str
    userId: str
    shipmentId: str
    trackingNumber: str


ShipmentCreated = event_type("shipping", "ShipmentCreated", versions={"1.0": ShipmentCreatedV1})
OrderShipped = event_type("shipping", "OrderShipped", versions={"1.0": OrderShippedV1})
