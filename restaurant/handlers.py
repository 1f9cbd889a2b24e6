from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from delivery.events import LocationUpdated, LocationUpdatedV1
from events import Event, subscribe
from restaurant.services import ProgressUpdate, progress_updates


@subscribe(LocationUpdated, version="1.0", service="restaurant", batch=True)
def mark_progress(events: list[Event[LocationUpdatedV1]]) -> None:
    oldest = timezone.now() - timedelta(seconds=settings.RESTAURANT_MAX_AGE_SECONDS)
    progress_updates(
        [
            ProgressUpdate(
                delivery_id=e.data.deliveryId,
                sequence=e.data.sequence,
                lat=e.data.lat,
                lon=e.data.lon,
                recorded_at=e.data.recordedAt,
                pickup=(e.data.pickup.lat, e.data.pickup.lon),
                dropoff=(e.data.dropoff.lat, e.data.dropoff.lon),
                late=e.timestamp < oldest,
            )
            for e in events
        ]
    )
