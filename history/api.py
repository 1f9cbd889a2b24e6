from datetime import datetime

from django.http import HttpRequest
from ninja import Query, Router, Schema

from history.models import Reading

router = Router(tags=["history"])


class ReadingOut(Schema):
    region: str
    sequence: int
    temperature_c: float
    rain_mm_per_hour: float
    observed_at: datetime
    station: str


class Window(Schema):
    limit: int = 100


@router.get("/{region}/readings", response=list[ReadingOut], summary="A region's readings, newest first")
def region_readings(request: HttpRequest, region: str, window: Query[Window]) -> list[Reading]:
    return list(Reading.objects.filter(region=region).order_by("-observed_at", "-sequence")[: max(1, min(window.limit, 1000))])
