from datetime import datetime

from django.conf import settings
from django.db import transaction

from events import publish
from weather import sensors
from weather.events import RainAlert, RainAlertV1, TemperatureUpdated, TemperatureUpdatedV1, region_subject
from weather.models import Region


@transaction.atomic
def reading_publish(*, region: Region, temperature_c: float, rain_mm_per_hour: float, observed_at: datetime, station: str) -> int:
    """Publish a station's reading as TemperatureUpdated (sequence: the region's next), and a RainAlert when its
    rain is above WEATHER_RAIN_ALERT_MM_PER_HOUR. Returns the reading's sequence."""
    region = Region.objects.select_for_update().get(pk=region.pk)
    region.last_sequence += 1
    region.save(update_fields=["last_sequence"])
    subject = region_subject(region.slug)
    publish(
        TemperatureUpdated,
        TemperatureUpdatedV1(
            region=region.slug,
            temperatureC=temperature_c,
            rainMmPerHour=rain_mm_per_hour,
            observedAt=observed_at,
            station=station,
        ),
        subject=subject,
        sequence=region.last_sequence,
        timestamp=observed_at,
    )
    threshold = settings.WEATHER_RAIN_ALERT_MM_PER_HOUR
    if rain_mm_per_hour > threshold:
        publish(
            RainAlert,
            RainAlertV1(
                region=region.slug,
                regionName=region.name,
                rainMmPerHour=rain_mm_per_hour,
                thresholdMmPerHour=threshold,
                observedAt=observed_at,
            ),
            subject=subject,
            timestamp=observed_at,
        )
    return region.last_sequence


def simulated_readings_publish(*, at: datetime) -> int:
    """Read the simulated sensor of every simulated region at `at` and publish the readings. Returns how many."""
    count = 0
    for region in Region.objects.filter(simulated=True):
        temperature, rain = sensors.read(region.slug, region.base_temperature_c, at)
        reading_publish(region=region, temperature_c=temperature, rain_mm_per_hour=rain, observed_at=at, station="simulated")
        count += 1
    return count


DEMO_REGIONS = [("north", "North", 11.0), ("coast", "Coast", 17.0), ("south", "South", 22.0)]


@transaction.atomic
def demo_regions_ensure() -> None:
    """The simulation's regions, created when there are none yet."""
    if not Region.objects.exists():
        for slug, name, base in DEMO_REGIONS:
            Region.objects.create(slug=slug, name=name, base_temperature_c=base, simulated=True)
