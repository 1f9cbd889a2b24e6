from datetime import datetime

from django.db import transaction
from django.db.models import F

from maps.models import RegionWeather


@transaction.atomic
def region_weather_update(
    *, region: str, sequence: int, temperature_c: float, rain_mm_per_hour: float, observed_at: datetime
) -> bool:
    """Show this reading unless a newer one is shown already. True if it is shown now."""
    fields = {
        "sequence": sequence,
        "temperature_c": temperature_c,
        "rain_mm_per_hour": rain_mm_per_hour,
        "observed_at": observed_at,
    }
    current, created = RegionWeather.objects.select_for_update().get_or_create(region=region, defaults=fields)
    if created:
        return True
    if (observed_at, sequence) <= (current.observed_at, current.sequence):
        if (observed_at, sequence) != (current.observed_at, current.sequence):
            RegionWeather.objects.filter(pk=current.pk).update(older_ignored=F("older_ignored") + 1)
        return False
    for name, value in fields.items():
        setattr(current, name, value)
    current.save()
    return True
