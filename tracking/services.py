from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from django.db import transaction
from django.utils import timezone

from project.rows import lock_or_create, update_rows
from tracking.models import DeliveryPosition

Outcome = Literal["updated", "older", "same", "late"]


@dataclass(frozen=True)
class PositionUpdate:
    delivery_id: str
    courier_id: str
    sequence: int
    lat: float
    lon: float
    recorded_at: datetime
    late: bool = False


def position_update(
    *, delivery_id: str, courier_id: str, sequence: int, lat: float, lon: float, recorded_at: datetime, late: bool = False
) -> Outcome:
    """Keep the update if its sequence is newer than the one held; count it otherwise (last writer by sequence wins)."""
    [outcome] = positions_update([PositionUpdate(delivery_id, courier_id, sequence, lat, lon, recorded_at, late)])
    return outcome


# Joins the caller's transaction without a savepoint of its own: its batch handler's run is one already, and
# undoes everything if this fails.
@transaction.atomic(savepoint=False)
def positions_update(updates: Sequence[PositionUpdate]) -> list[Outcome]:
    """`position_update` for each of `updates` in turn, with a few statements for all of them.

    The deliveries' rows are locked in the order of their ids (so concurrent batches cannot
    deadlock), created where missing, changed in memory and written back with one UPDATE. The
    outcome of each update is the one it would have had applied on its own, in this order.
    """
    held = lock_or_create(DeliveryPosition, "delivery_id", {u.delivery_id: {"courier_id": u.courier_id} for u in updates})
    outcomes: list[Outcome] = []
    changed: dict[str, DeliveryPosition] = {}
    now = timezone.now()
    for update in updates:
        position = held[update.delivery_id]
        if update.late:
            position.late_skipped += 1
            outcomes.append("late")
        elif position.sequence is not None and update.sequence < position.sequence:
            position.older_ignored += 1
            outcomes.append("older")
        elif position.sequence == update.sequence:
            outcomes.append("same")
            continue
        else:
            position.courier_id, position.sequence, position.lat, position.lon = (
                update.courier_id,
                update.sequence,
                update.lat,
                update.lon,
            )
            position.recorded_at, position.updated_at = update.recorded_at, now
            outcomes.append("updated")
        changed[update.delivery_id] = position
    if changed:
        update_rows(
            list(changed.values()),
            ["courier_id", "sequence", "lat", "lon", "recorded_at", "updated_at", "older_ignored", "late_skipped"],
        )
    return outcomes
