from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema

from maps.models import RegionWeather

router = Router(tags=["maps"])


class RegionWeatherOut(Schema):
    region: str
    temperature_c: float
    rain_mm_per_hour: float
    observed_at: datetime
    sequence: int


@router.get("/regions", response=list[RegionWeatherOut], auth=None, summary="The latest reading of every region")
def regions(request: HttpRequest) -> list[RegionWeather]:
    return list(RegionWeather.objects.order_by("region"))
