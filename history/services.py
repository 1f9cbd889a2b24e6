from datetime import datetime

from django.db import transaction

from history.models import Reading


@transaction.atomic
def reading_store(
    *,
    region: str,
    sequence: int,
    temperature_c: float,
    rain_mm_per_hour: float,
    observed_at: datetime,
    station: str,
    event_id: str,
) -> Reading:
    reading, _ = Reading.objects.get_or_create(
        region=region,
        sequence=sequence,
        defaults={
            "temperature_c": temperature_c,
            "rain_mm_per_hour": rain_mm_per_hour,
            "observed_at": observed_at,
            "station": station,
            "event_id": event_id,
        },
    )
    return reading
