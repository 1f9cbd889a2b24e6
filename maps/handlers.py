from events import Event, subscribe
from maps.services import region_weather_update
from weather.events import TemperatureUpdated, TemperatureUpdatedV1


@subscribe(TemperatureUpdated, version="1.0", service="maps")
def show_latest_reading(event: Event[TemperatureUpdatedV1]) -> None:
    data = event.data
    region_weather_update(
        region=data.region,
        sequence=event.sequence or 0,
        temperature_c=data.temperatureC,
        rain_mm_per_hour=data.rainMmPerHour,
        observed_at=data.observedAt,
    )
