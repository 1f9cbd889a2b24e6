from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from delivery.events import LocationUpdated, LocationUpdatedV1
from events import Event, subscribe
from restaurant.services import progress_update


@subscribe(LocationUpdated, version="1.0", service="restaurant")
def mark_progress(event: Event[LocationUpdatedV1]) -> None:
    data = event.data
    late = timezone.now() - event.timestamp > timedelta(seconds=settings.RESTAURANT_MAX_AGE_SECONDS)
    progress_update(
        delivery_id=data.deliveryId,
        sequence=data.sequence,
        lat=data.lat,
        lon=data.lon,
        recorded_at=data.recordedAt,
        pickup=(data.pickup.lat, data.pickup.lon),
        dropoff=(data.dropoff.lat, data.dropoff.lon),
        late=late,
    )
