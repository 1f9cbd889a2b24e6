from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status

from project.schemas import ErrorOut
from tracking.models import DeliveryPosition

router = Router(tags=["tracking"])


class PositionOut(Schema):
    delivery_id: str
    courier_id: str
    sequence: int | None
    lat: float | None
    lon: float | None
    recorded_at: datetime | None
    older_ignored: int
    late_skipped: int


@router.get(
    "/{delivery_id}/position", response={200: PositionOut, 404: ErrorOut}, auth=None, summary="A delivery's latest position"
)
def delivery_position(request: HttpRequest, delivery_id: str) -> Status:
    position = DeliveryPosition.objects.filter(delivery_id=delivery_id).first()
    if position is None:
        return Status(404, {"detail": f"no position known for delivery {delivery_id}"})
    return Status(200, position)
