from datetime import datetime

from events import EventSchema, event_type


class TemperatureUpdatedV1(EventSchema):
    """One reading of a region's station."""

    region: str
    temperatureC: float
    rainMmPerHour: float
    observedAt: datetime
    station: str


class RainAlertV1(EventSchema):
    """A reading whose rain is above the alert threshold."""

    region: str
    regionName: str
    rainMmPerHour: float
    thresholdMmPerHour: float
    observedAt: datetime


TemperatureUpdated = event_type("weather", "TemperatureUpdated", versions={"1.0": TemperatureUpdatedV1})
RainAlert = event_type("weather", "RainAlert", versions={"1.0": RainAlertV1})


def region_subject(region: str) -> str:
    return f"region-{region}"
