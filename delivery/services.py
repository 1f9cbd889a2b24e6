from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from delivery.events import LocationUpdated, LocationUpdatedV1, Point, delivery_subject
from delivery.models import Courier, Delivery
from events.publishing import Publication, publish_many


class NoActiveDelivery(Exception):
    def __init__(self, courier: Courier) -> None:
        super().__init__(f"courier {courier.pk} has no active delivery to report positions for")


@dataclass(frozen=True)
class Position:
    lat: float
    lon: float
    time: datetime
    sequence: int


@dataclass(frozen=True)
class Recorded:
    delivery: Delivery
    accepted: int
    duplicates: int


@transaction.atomic
def delivery_create(
    *, courier: Courier, pickup_lat: float, pickup_lon: float, dropoff_lat: float, dropoff_lon: float
) -> Delivery:
    return Delivery.objects.create(
        courier=courier, pickup_lat=pickup_lat, pickup_lon=pickup_lon, dropoff_lat=dropoff_lat, dropoff_lon=dropoff_lon
    )


@transaction.atomic
def delivery_complete(*, delivery: Delivery) -> Delivery:
    delivery.status = Delivery.Status.COMPLETED
    delivery.save(update_fields=["status"])
    return delivery


def courier_locations_record(*, courier: Courier, positions: list[Position], delivery: Delivery | None = None) -> Recorded:
    """Publish one LocationUpdated per position for the courier's active delivery (in one statement); `delivery` is
    that delivery when the caller has read it already.

    Subject is the delivery, sequence the courier's. A position whose sequence this delivery
    already has (an app sending again after a lost answer) is a duplicate and publishes nothing: the event
    log's unique (subject, sequence) is the record of what was accepted, and the insert leaves such
    positions out (`publish_many(skip_taken=True)`). No transaction of its own: its one write is one
    statement (it joins the caller's transaction, if there is one).
    """
    if delivery is None:
        delivery = Delivery.objects.filter(courier=courier, status=Delivery.Status.ACTIVE).first()
    elif delivery.courier_id != courier.pk or delivery.status != Delivery.Status.ACTIVE:
        raise ValueError(f"{delivery} is not the active delivery of courier {courier.pk}")
    if delivery is None:
        raise NoActiveDelivery(courier)
    subject = delivery_subject(delivery.pk)
    pickup = Point(lat=delivery.pickup_lat, lon=delivery.pickup_lon)
    dropoff = Point(lat=delivery.dropoff_lat, lon=delivery.dropoff_lon)
    events = [
        LocationUpdatedV1(
            deliveryId=str(delivery.pk),
            courierId=str(courier.pk),
            sequence=p.sequence,
            lat=p.lat,
            lon=p.lon,
            recordedAt=p.time,
            pickup=pickup,
            dropoff=dropoff,
        )
        for p in positions
    ]
    written = publish_many(
        LocationUpdated,
        [
            Publication(data, subject=subject, sequence=position.sequence, timestamp=position.time)
            for position, data in zip(positions, events, strict=True)
        ],
        skip_taken=True,
    )
    accepted = len(written)
    return Recorded(delivery=delivery, accepted=accepted, duplicates=len(positions) - accepted)
