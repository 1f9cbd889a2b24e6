from django.http import HttpRequest
from ninja import Router, Schema, Status

from analytics.models import DeliveryRoute
from project.schemas import ErrorOut

router = Router(tags=["analytics"])


class RouteOut(Schema):
    delivery_id: str
    points: int
    distance_m: float
    average_speed_mps: float | None
    late_skipped: int


@router.get(
    "/{delivery_id}/route", response={200: RouteOut, 404: ErrorOut}, auth=None, summary="A delivery's distance and average speed"
)
def delivery_route(request: HttpRequest, delivery_id: str) -> Status:
    route = DeliveryRoute.objects.filter(delivery_id=delivery_id).first()
    if route is None:
        return Status(404, {"detail": f"no route known for delivery {delivery_id}"})
    return Status(200, route)
