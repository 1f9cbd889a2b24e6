from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from analytics.services import RoutePosition, route_points_add
from delivery.events import LocationUpdated, LocationUpdatedV1
from events import Event, subscribe


@subscribe(LocationUpdated, version="1.0", service="analytics", ordered=True, batch=True)
def add_to_route(events: list[Event[LocationUpdatedV1]]) -> None:
    oldest = timezone.now() - timedelta(seconds=settings.ANALYTICS_MAX_AGE_SECONDS)
    route_points_add(
        [
            RoutePosition(
                delivery_id=e.data.deliveryId,
                sequence=e.data.sequence,
                lat=e.data.lat,
                lon=e.data.lon,
                recorded_at=e.data.recordedAt,
                late=e.timestamp < oldest,
            )
            for e in events
        ]
    )
