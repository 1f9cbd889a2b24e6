from events import Event, subscribe
from history.services import reading_store
from weather.events import TemperatureUpdated, TemperatureUpdatedV1


@subscribe(TemperatureUpdated, version="1.0", service="history")
def store_reading(event: Event[TemperatureUpdatedV1]) -> None:
    data = event.data
    reading_store(
        region=data.region,
        sequence=event.sequence or 0,
        temperature_c=data.temperatureC,
        rain_mm_per_hour=data.rainMmPerHour,
        observed_at=data.observedAt,
        station=data.station,
        event_id=event.id,
    )
