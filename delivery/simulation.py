"""The simulated couriers of `make run`: each rides from a pickup to a drop-off and starts over."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from delivery.geo import haversine_m
from delivery.models import Courier, Delivery
from delivery.services import Position, courier_locations_record, delivery_complete, delivery_create

# Around Berlin's centre: restaurants and customers a few kilometres apart.
ROUTES = [
    ((52.5200, 13.4050), (52.5340, 13.4280)),
    ((52.5070, 13.3900), (52.4890, 13.4150)),
    ((52.5160, 13.3780), (52.5300, 13.3620)),
]
SPEED_MPS = 9.0
POSITIONS_PER_TICK = 4
TICK = timedelta(seconds=2)


@transaction.atomic
def simulated_couriers_ensure(*, count: int = 3) -> list[Courier]:
    couriers = list(Courier.objects.filter(simulated=True).order_by("pk"))
    for i in range(len(couriers), count):
        couriers.append(Courier.objects.create(name=f"Simulated courier {i + 1}", simulated=True))
    return couriers


def _along(start: tuple[float, float], end: tuple[float, float], fraction: float) -> tuple[float, float]:
    fraction = min(1.0, max(0.0, fraction))
    return start[0] + (end[0] - start[0]) * fraction, start[1] + (end[1] - start[1]) * fraction


@transaction.atomic
def courier_simulate(*, courier: Courier, now: datetime) -> int:
    """Move the courier on by one tick and report the positions through the same service as the API."""
    courier = Courier.objects.select_for_update().get(pk=courier.pk)
    delivery = courier.deliveries.filter(status=Delivery.Status.ACTIVE).first()
    if delivery is None:
        route = ROUTES[(courier.pk + courier.deliveries.count()) % len(ROUTES)]
        delivery = delivery_create(
            courier=courier, pickup_lat=route[0][0], pickup_lon=route[0][1], dropoff_lat=route[1][0], dropoff_lon=route[1][1]
        )
    pickup, dropoff = (delivery.pickup_lat, delivery.pickup_lon), (delivery.dropoff_lat, delivery.dropoff_lon)
    length = haversine_m(*pickup, *dropoff)
    elapsed = (now - delivery.created_at).total_seconds()
    positions = []
    for i in range(POSITIONS_PER_TICK):
        at = now - TICK + TICK * (i + 1) / POSITIONS_PER_TICK
        ridden = max(0.0, (at - delivery.created_at).total_seconds()) * SPEED_MPS
        lat, lon = _along(pickup, dropoff, ridden / length if length else 1.0)
        courier.simulation_sequence += 1
        positions.append(Position(lat=round(lat, 6), lon=round(lon, 6), time=at, sequence=courier.simulation_sequence))
    courier.save(update_fields=["simulation_sequence"])
    courier_locations_record(courier=courier, positions=positions)
    if elapsed * SPEED_MPS >= length:
        delivery_complete(delivery=delivery)
    return len(positions)
