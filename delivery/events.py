from datetime import datetime

from events import EventSchema, event_type


class Point(EventSchema):
    lat: float
    lon: float


class LocationUpdatedV1(EventSchema):
    """A courier's position on a delivery. Carries the delivery's pickup and drop-off so that consumers need no call back."""

    deliveryId: str
    courierId: str
    sequence: int
    lat: float
    lon: float
    recordedAt: datetime
    pickup: Point
    dropoff: Point


LocationUpdated = event_type("delivery", "LocationUpdated", versions={"1.0": LocationUpdatedV1})


def delivery_subject(delivery_id: int | str) -> str:
    return f"delivery-{delivery_id}"
