from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from analytics.models import DeliveryRoute, RoutePoint
from delivery.geo import haversine_m
from project.rows import insert_rows, lock_or_create, update_rows


@dataclass(frozen=True)
class RoutePosition:
    delivery_id: str
    sequence: int
    lat: float
    lon: float
    recorded_at: datetime
    late: bool = False


class _Spot(NamedTuple):
    lat: float
    lon: float


def _length(chain: Sequence[Any]) -> float:
    """The length of a path through points (anything with `lat` and `lon`), in metres."""
    return sum(haversine_m(a.lat, a.lon, b.lat, b.lon) for a, b in zip(chain, chain[1:], strict=False))


def route_point_add(
    *, delivery_id: str, sequence: int, lat: float, lon: float, recorded_at: datetime, late: bool = False
) -> DeliveryRoute:
    """Insert a position into the delivery's route in sequence order, whatever order positions arrive in."""
    route_points_add([RoutePosition(delivery_id, sequence, lat, lon, recorded_at, late)])
    return DeliveryRoute.objects.get(delivery_id=delivery_id)


# Joins the caller's transaction without a savepoint of its own: its batch handler's run is one already, and
# undoes everything if this fails.
@transaction.atomic(savepoint=False)
def route_points_add(positions: Sequence[RoutePosition]) -> None:
    """Insert positions into their deliveries' routes in sequence order, whatever order they arrive in.

    The distance is kept as the sum of legs between consecutive sequences: points landing between
    known ones replace the legs they split with the legs through them (the path from the known
    point before the new ones to the one after, old against new). The route rows are locked
    first, in the order of their ids, so concurrent handlers of one delivery take turns. A sequence
    already in the route changes nothing; late positions are only counted. Per delivery the work
    is a handful of statements, however many positions it gets, and none when they all come after
    the route's last point (the route row holds it), as they do for this ordered handler.
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
        if not candidates:
            continue
        if _appends(route, min(candidates)):
            # The usual case (the handler is ordered): every new point comes after the last known one, which the
            # route row holds, so nothing is read; none of them can be known yet.
            added = sorted(candidates.values(), key=lambda p: p.sequence)
            last = [] if route.last_sequence is None else [_Spot(route.last_lat, route.last_lon)]
            old_path, new_path = last, [*last, *added]
        else:
            points = RoutePoint.objects.filter(delivery_id=delivery_id)
            known = set(points.filter(sequence__in=list(candidates)).values_list("sequence", flat=True))
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
        low, high = added[0].sequence, added[-1].sequence
        route.distance_m += _length(new_path) - _length(old_path)
        route.points += len(added)
        if route.first_sequence is None or low < route.first_sequence:
            route.first_sequence, route.first_at = low, added[0].recorded_at
        if route.last_sequence is None or high > route.last_sequence:
            route.last_sequence, route.last_at = high, added[-1].recorded_at
            route.last_lat, route.last_lon = added[-1].lat, added[-1].lon
        route.updated_at = now
        new_points += [
            RoutePoint(delivery_id=delivery_id, sequence=p.sequence, lat=p.lat, lon=p.lon, recorded_at=p.recorded_at)
            for p in added
        ]
    insert_rows(new_points)
    fields = ["points", "distance_m", "first_sequence", "first_at", "last_sequence", "last_at", "last_lat", "last_lon"]
    update_rows(list(routes.values()), [*fields, "late_skipped", "updated_at"])


def _appends(route: DeliveryRoute, low: int) -> bool:
    """Whether positions from sequence `low` on all come after the route's known points, whose last the row holds."""
    if route.last_sequence is None:
        return route.points == 0
    return route.last_lat is not None and low > route.last_sequence
