from datetime import datetime

from django.http import HttpRequest
from ninja import Router, Schema, Status

from project.schemas import ErrorOut
from restaurant.models import DeliveryProgress

router = Router(tags=["restaurant"])


class ProgressOut(Schema):
    delivery_id: str
    status: str
    picked_up_at: datetime | None
    nearby_at: datetime | None
    arrived_at: datetime | None
    late_skipped: int


@router.get("/{delivery_id}/progress", response={200: ProgressOut, 404: ErrorOut}, auth=None, summary="A delivery's progress")
def delivery_progress(request: HttpRequest, delivery_id: str) -> Status:
    progress = DeliveryProgress.objects.filter(delivery_id=delivery_id).first()
    if progress is None:
        return Status(404, {"detail": f"no progress known for delivery {delivery_id}"})
    return Status(200, progress)
