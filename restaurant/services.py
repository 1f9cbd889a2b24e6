import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F

from delivery.geo import haversine_m
from restaurant.models import DeliveryProgress, Transition

logger = logging.getLogger(__name__)


def milestones_reached(*, lat: float, lon: float, pickup: tuple[float, float], dropoff: tuple[float, float]) -> list[str]:
    reached = []
    if haversine_m(lat, lon, *pickup) <= settings.RESTAURANT_PICKUP_RADIUS_M:
        reached.append("picked_up")
    to_dropoff = haversine_m(lat, lon, *dropoff)
    if to_dropoff <= settings.RESTAURANT_NEARBY_RADIUS_M:
        reached.append("nearby")
    if to_dropoff <= settings.RESTAURANT_ARRIVED_RADIUS_M:
        reached.append("arrived")
    return reached


@transaction.atomic
def progress_update(
    *,
    delivery_id: str,
    sequence: int,
    lat: float,
    lon: float,
    recorded_at: datetime,
    pickup: tuple[float, float],
    dropoff: tuple[float, float],
    late: bool = False,
) -> list[str]:
    """Record the milestones this position reaches; returns those reached for the first time (each transition once)."""
    progress, _ = DeliveryProgress.objects.select_for_update().get_or_create(delivery_id=delivery_id)
    if late:
        DeliveryProgress.objects.filter(pk=progress.pk).update(late_skipped=F("late_skipped") + 1)
        return []
    new = []
    for milestone in milestones_reached(lat=lat, lon=lon, pickup=pickup, dropoff=dropoff):
        held = getattr(progress, f"{milestone}_sequence")
        if held is None:
            new.append(milestone)
        if held is None or sequence < held:
            setattr(progress, f"{milestone}_sequence", sequence)
            setattr(progress, f"{milestone}_at", recorded_at)
    progress.save()
    for milestone in new:
        Transition.objects.create(delivery_id=delivery_id, milestone=milestone, sequence=sequence)
        logger.info("delivery %s: %s", delivery_id, milestone.replace("_", " "))
    return new
