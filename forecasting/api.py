from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status

from forecasting.models import Forecast
from project.schemas import ErrorOut

router = Router(tags=["forecasting"])


class ForecastOut(Schema):
    region: str
    predicted_c: float
    after_sequence: int
    after_observed_at: datetime
    observations: int
    mae_c: float | None


@router.get("/{region}", response={200: ForecastOut, 404: ErrorOut}, auth=None, summary="A region's next temperature")
def region_forecast(request: HttpRequest, region: str) -> Status:
    forecast = Forecast.objects.filter(region=region).first()
    if forecast is None:
        return Status(404, {"detail": f"no forecast for region {region!r} yet"})
    return Status(200, forecast)
