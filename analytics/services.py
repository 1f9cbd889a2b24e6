from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from analytics.models import DeliveryRoute, RoutePoint
from delivery.geo import haversine_m
from project.rows import lock_or_create


@dataclass(frozen=True)
class RoutePosition:
    delivery_id: str
    sequence: int
    lat: float
    lon: float
    recorded_at: datetime
    late: bool = False


def _length(chain: Sequence[Any]) -> float:
    """The length of a path through points (anything with `lat` and `lon`), in metres."""
    return sum(haversine_m(a.lat, a.lon, b.lat, b.lon) for a, b in zip(chain, chain[1:], strict=False))


def route_point_add(
    *, delivery_id: str, sequence: int, lat: float, lon: float, recorded_at: datetime, late: bool = False
) -> DeliveryRoute:
    """Insert a position into the delivery's route in sequence order, whatever order positions arrive in."""
    route_points_add([RoutePosition(delivery_id, sequence, lat, lon, recorded_at, late)])
    return DeliveryRoute.objects.get(delivery_id=delivery_id)


@transaction.atomic
def route_points_add(positions: Sequence[RoutePosition]) -> None:
    """Insert positions into their deliveries' routes in sequence order, whatever order they arrive in.

    The distance is kept as the sum of legs between consecutive sequences: points landing between
    known ones replace the legs they split with the legs through them (the path from the known
    point before the new ones to the one after, old against new). The route rows are locked
    first, in the order of their ids, so concurrent handlers of one delivery take turns. A sequence
    already in the route changes nothing; late positions are only counted. Per delivery the work
    is a handful of statements, however many positions it gets.
    """
    ids = sorted({p.delivery_id for p in positions})
    routes = lock_or_create(DeliveryRoute, "delivery_id", dict.fromkeys(ids, {}))
    now = timezone.now()
    new_points: list[RoutePoint] = []
    for delivery_id in ids:
        route = routes[delivery_id]
        mine = [p for p in positions if p.delivery_id == delivery_id]
        route.late_skipped += sum(1 for p in mine if p.late)
        candidates: dict[int, RoutePosition] = {}
        for position in mine:
            if not position.late:
                candidates.setdefault(position.sequence, position)
        points = RoutePoint.objects.filter(delivery_id=delivery_id)
        known = set(points.filter(sequence__in=list(candidates)).values_list("sequence", flat=True)) if candidates else set()
        added = sorted((p for s, p in candidates.items() if s not in known), key=lambda p: p.sequence)
        if not added:
            continue
        low, high = added[0].sequence, added[-1].sequence
        before = points.filter(sequence__lt=low).order_by("-sequence").first()
        after = points.filter(sequence__gt=high).order_by("sequence").first()
        between = list(points.filter(sequence__gt=low, sequence__lt=high).order_by("sequence"))
        ends = [p for p in (before, after) if p is not None]
        old_path = sorted([*ends, *between], key=lambda p: p.sequence)
        new_path = sorted([*ends, *between, *added], key=lambda p: p.sequence)
        route.distance_m += _length(new_path) - _length(old_path)
        route.points += len(added)
        if route.first_sequence is None or low < route.first_sequence:
            route.first_sequence, route.first_at = low, added[0].recorded_at
        if route.last_sequence is None or high > route.last_sequence:
            route.last_sequence, route.last_at = high, added[-1].recorded_at
        route.updated_at = now
        new_points += [
            RoutePoint(delivery_id=delivery_id, sequence=p.sequence, lat=p.lat, lon=p.lon, recorded_at=p.recorded_at)
            for p in added
        ]
    RoutePoint.objects.bulk_create(new_points)
    fields = ["points", "distance_m", "first_sequence", "first_at", "last_sequence", "last_at", "late_skipped", "updated_at"]
    DeliveryRoute.objects.bulk_update(list(routes.values()), fields)
