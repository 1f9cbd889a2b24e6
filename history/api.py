from datetime import datetime

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from history.models import Reading
from project.schemas import ValidationErrorOut

router = Router(tags=["history"])


class ReadingOut(Schema):
    region: str
    sequence: int
    temperature_c: float
    rain_mm_per_hour: float
    observed_at: datetime
    station: str


class Window(Schema):
    limit: int = Field(default=100, ge=1, le=1000, description="How many readings, newest first.")


@router.get(
    "/{region}/readings",
    response={200: list[ReadingOut], 422: ValidationErrorOut},
    auth=None,
    summary="A region's readings, newest first",
)
def region_readings(request: HttpRequest, region: str, window: Query[Window]) -> list[Reading]:
    return list(Reading.objects.filter(region=region).order_by("-observed_at", "-sequence")[: window.limit])
