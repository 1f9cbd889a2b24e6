"""Factories for the courier and weather tests: users, couriers, deliveries, routes."""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model

from delivery.models import Courier, Delivery
from delivery.services import Position, delivery_create

PICKUP = (52.5200, 13.4050)
DROPOFF = (52.5290, 13.4200)  # about 1.4 km away


def user(username: str = "rider", *, staff: bool = False, password: str = "pw-courier-123"):  # noqa: ANN201
    return get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password=password, is_staff=staff
    )


def basic(username: str, password: str = "pw-courier-123") -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def courier_with_delivery(
    *, username: str = "rider", pickup: tuple[float, float] = PICKUP, dropoff: tuple[float, float] = DROPOFF
):  # noqa: ANN201
    courier = Courier.objects.create(name=username.title(), user=user(username))
    delivery = delivery_create(
        courier=courier, pickup_lat=pickup[0], pickup_lon=pickup[1], dropoff_lat=dropoff[0], dropoff_lon=dropoff[1]
    )
    return courier, delivery


def route(
    *,
    start: datetime,
    count: int,
    first_sequence: int = 1,
    pickup: tuple[float, float] = PICKUP,
    dropoff: tuple[float, float] = DROPOFF,
    seed: int = 7,
    every: timedelta = timedelta(seconds=1),
) -> list[Position]:
    """`count` positions riding from just before the pickup to the drop-off, with a little sideways jitter."""
    rng = random.Random(seed)
    positions = []
    for i in range(count):
        f = -0.02 + 1.02 * i / (count - 1)
        lat = pickup[0] + (dropoff[0] - pickup[0]) * f + rng.uniform(-2e-5, 2e-5)
        lon = pickup[1] + (dropoff[1] - pickup[1]) * f + rng.uniform(-2e-5, 2e-5)
        if i == count - 1:
            lat, lon = dropoff
        positions.append(Position(lat=lat, lon=lon, time=start + i * every, sequence=first_sequence + i))
    return positions


def path_length_m(positions: list[Position]) -> float:
    from delivery.geo import haversine_m

    ordered = sorted(positions, key=lambda p: p.sequence)
    return sum(haversine_m(a.lat, a.lon, b.lat, b.lon) for a, b in zip(ordered, ordered[1:], strict=False))


def as_json(position: Position) -> dict:
    return {"lat": position.lat, "lon": position.lon, "time": position.time.isoformat(), "sequence": position.sequence}


__all__ = ["Courier", "Delivery"]
