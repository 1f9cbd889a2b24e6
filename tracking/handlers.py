from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from delivery.events import LocationUpdated, LocationUpdatedV1
from events import Event, subscribe
from tracking.services import position_update


@subscribe(LocationUpdated, version="1.0", service="tracking")
def keep_latest_position(event: Event[LocationUpdatedV1]) -> None:
    data = event.data
    late = timezone.now() - event.timestamp > timedelta(seconds=settings.TRACKING_MAX_AGE_SECONDS)
    position_update(
        delivery_id=data.deliveryId,
        courier_id=data.courierId,
        sequence=data.sequence,
        lat=data.lat,
        lon=data.lon,
        recorded_at=data.recordedAt,
        late=late,
    )
