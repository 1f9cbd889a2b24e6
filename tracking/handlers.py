from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from delivery.events import LocationUpdated, LocationUpdatedV1
from events import Event, subscribe
from tracking.services import PositionUpdate, positions_update


@subscribe(LocationUpdated, version="1.0", service="tracking", batch=True)
def keep_latest_position(events: list[Event[LocationUpdatedV1]]) -> None:
    oldest = timezone.now() - timedelta(seconds=settings.TRACKING_MAX_AGE_SECONDS)
    positions_update(
        [
            PositionUpdate(
                delivery_id=e.data.deliveryId,
                courier_id=e.data.courierId,
                sequence=e.data.sequence,
                lat=e.data.lat,
                lon=e.data.lon,
                recorded_at=e.data.recordedAt,
                late=e.timestamp < oldest,
            )
            for e in events
        ]
    )
