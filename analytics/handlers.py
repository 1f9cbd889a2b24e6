from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from analytics.services import route_point_add
from delivery.events import LocationUpdated, LocationUpdatedV1
from events import Event, subscribe


@subscribe(LocationUpdated, version="1.0", service="analytics", ordered=True)
def add_to_route(event: Event[LocationUpdatedV1]) -> None:
    data = event.data
    late = timezone.now() - event.timestamp > timedelta(seconds=settings.ANALYTICS_MAX_AGE_SECONDS)
    route_point_add(
        delivery_id=data.deliveryId, sequence=data.sequence, lat=data.lat, lon=data.lon, recorded_at=data.recordedAt, late=late
    )
