from events import Event, subscribe
from forecasting.services import forecast_update
from weather.events import TemperatureUpdated, TemperatureUpdatedV1


@subscribe(TemperatureUpdated, version="1.0", service="forecasting")
def update_forecast(event: Event[TemperatureUpdatedV1]) -> None:
    data = event.data
    forecast_update(
        region=data.region, sequence=event.sequence or 0, observed_at=data.observedAt, temperature_c=data.temperatureC
    )
