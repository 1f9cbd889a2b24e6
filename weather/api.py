from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import AwareDatetime, field_validator

from project.auth import api_auth
from project.schemas import BODY_ERRORS, ErrorOut
from weather.models import Region
from weather.services import reading_publish

router = Router(tags=["weather"])


class ReadingIn(Schema):
    temperature_c: float = Field(ge=-90, le=60, description="Air temperature in °C.")
    rain_mm_per_hour: float = Field(ge=0, le=500, description="Rain rate in mm/h.")
    observed_at: AwareDatetime = Field(description="When the reading was taken, with its time zone.")
    station: str = Field(min_length=1, max_length=100, description="The station's name.")

    @field_validator("observed_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime) -> datetime:
        skew = timedelta(seconds=settings.DELIVERY_CLOCK_SKEW_SECONDS)
        now = datetime.now(UTC)
        if value > now + skew:
            raise ValueError(
                f"observed_at {value.isoformat()} is in the future (server time {now.isoformat()}, allowed skew {skew})"
            )
        if value.year < 1970:
            raise ValueError("observed_at must be after 1970")
        return value


class ReadingOut(Schema):
    region: str
    sequence: int
    rain_alert: bool


@router.post(
    "/regions/{slug}/readings",
    auth=api_auth,
    response={202: ReadingOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, **BODY_ERRORS},
    summary="Report a station's reading",
)
def region_reading(request: HttpRequest, slug: str, payload: ReadingIn) -> Status:
    """A real station's reading: published as TemperatureUpdated, plus RainAlert above the rain threshold. Staff only."""
    if not request.auth.is_staff:
        return Status(403, {"detail": "only staff accounts may report readings"})
    region = Region.objects.filter(slug=slug).first()
    if region is None:
        return Status(404, {"detail": f"no region {slug!r}"})
    sequence = reading_publish(
        region=region,
        temperature_c=payload.temperature_c,
        rain_mm_per_hour=payload.rain_mm_per_hour,
        observed_at=payload.observed_at,
        station=payload.station,
    )
    return Status(
        202,
        {"region": slug, "sequence": sequence, "rain_alert": payload.rain_mm_per_hour > settings.WEATHER_RAIN_ALERT_MM_PER_HOUR},
    )
