from datetime import datetime

from django.db import transaction
from django.db.models import F

from analytics.models import DeliveryRoute, RoutePoint
from delivery.geo import haversine_m


def _leg(a: RoutePoint | None, b: RoutePoint | None) -> float:
    return 0.0 if a is None or b is None else haversine_m(a.lat, a.lon, b.lat, b.lon)


@transaction.atomic
def route_point_add(
    *, delivery_id: str, sequence: int, lat: float, lon: float, recorded_at: datetime, late: bool = False
) -> DeliveryRoute:
    """Insert a position into the delivery's route in sequence order, whatever order positions arrive in.

    The distance is kept as the sum of legs between consecutive sequences: a point landing between
    two known ones replaces their leg with the two legs through it. The route row is locked first, so
    concurrent handlers of one delivery take turns. A sequence already in the route changes nothing.
    """
    route, _ = DeliveryRoute.objects.select_for_update().get_or_create(delivery_id=delivery_id)
    if late:
        DeliveryRoute.objects.filter(pk=route.pk).update(late_skipped=F("late_skipped") + 1)
        route.refresh_from_db()
        return route
    points = RoutePoint.objects.filter(delivery_id=delivery_id)
    if points.filter(sequence=sequence).exists():
        return route
    point = RoutePoint.objects.create(delivery_id=delivery_id, sequence=sequence, lat=lat, lon=lon, recorded_at=recorded_at)
    before = points.filter(sequence__lt=sequence).order_by("-sequence").first()
    after = points.filter(sequence__gt=sequence).order_by("sequence").first()
    route.distance_m += _leg(before, point) + _leg(point, after) - _leg(before, after)
    route.points += 1
    if route.first_sequence is None or sequence < route.first_sequence:
        route.first_sequence, route.first_at = sequence, recorded_at
    if route.last_sequence is None or sequence > route.last_sequence:
        route.last_sequence, route.last_at = sequence, recorded_at
    route.save()
    return route
