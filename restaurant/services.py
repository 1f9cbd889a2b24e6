import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from delivery.geo import haversine_m
from project.rows import insert_rows, lock_or_create, update_rows
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


@dataclass(frozen=True)
class ProgressUpdate:
    delivery_id: str
    sequence: int
    lat: float
    lon: float
    recorded_at: datetime
    pickup: tuple[float, float]
    dropoff: tuple[float, float]
    late: bool = False


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
    [new] = progress_updates([ProgressUpdate(delivery_id, sequence, lat, lon, recorded_at, pickup, dropoff, late)])
    return new


# Joins the caller's transaction without a savepoint of its own: its batch handler's run is one already, and
# undoes everything if this fails.
@transaction.atomic(savepoint=False)
def progress_updates(updates: Sequence[ProgressUpdate]) -> list[list[str]]:
    """`progress_update` for each of `updates` in turn, with a few statements for all of them: the deliveries'
    rows are locked in the order of their ids, created where missing, changed in memory and written back
    with one UPDATE; the transitions are inserted with one INSERT."""
    held = lock_or_create(DeliveryProgress, "delivery_id", {u.delivery_id: {} for u in updates})
    now = timezone.now()
    results: list[list[str]] = []
    transitions: list[Transition] = []
    changed: dict[str, DeliveryProgress] = {}
    for update in updates:
        progress = held[update.delivery_id]
        changed[update.delivery_id] = progress
        new: list[str] = []
        results.append(new)
        if update.late:
            progress.late_skipped += 1
            continue
        progress.updated_at = now
        for milestone in milestones_reached(lat=update.lat, lon=update.lon, pickup=update.pickup, dropoff=update.dropoff):
            reached = getattr(progress, f"{milestone}_sequence")
            if reached is None:
                new.append(milestone)
                transitions.append(Transition(delivery_id=update.delivery_id, milestone=milestone, sequence=update.sequence))
            if reached is None or update.sequence < reached:
                setattr(progress, f"{milestone}_sequence", update.sequence)
                setattr(progress, f"{milestone}_at", update.recorded_at)
    fields = [f"{m}_{suffix}" for m in DeliveryProgress.MILESTONES for suffix in ("sequence", "at")]
    update_rows(list(changed.values()), [*fields, "late_skipped", "updated_at"])
    insert_rows(transitions)
    for transition in transitions:
        logger.info("delivery %s: %s", transition.delivery_id, transition.milestone.replace("_", " "))
    return results
