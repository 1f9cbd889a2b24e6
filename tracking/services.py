from datetime import datetime
from typing import Literal

from django.db import transaction
from django.db.models import F

from tracking.models import DeliveryPosition

Outcome = Literal["updated", "older", "same", "late"]


@transaction.atomic
def position_update(
    *, delivery_id: str, courier_id: str, sequence: int, lat: float, lon: float, recorded_at: datetime, late: bool = False
) -> Outcome:
    """Keep the update if its sequence is newer than the one held; count it otherwise (last writer by sequence wins)."""
    position, _ = DeliveryPosition.objects.select_for_update().get_or_create(
        delivery_id=delivery_id, defaults={"courier_id": courier_id}
    )
    if late:
        DeliveryPosition.objects.filter(pk=position.pk).update(late_skipped=F("late_skipped") + 1)
        return "late"
    if position.sequence is not None and sequence < position.sequence:
        DeliveryPosition.objects.filter(pk=position.pk).update(older_ignored=F("older_ignored") + 1)
        return "older"
    if position.sequence == sequence:
        return "same"
    position.courier_id, position.sequence, position.lat, position.lon, position.recorded_at = (
        courier_id,
        sequence,
        lat,
        lon,
        recorded_at,
    )
    position.save()
    return "updated"
