from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import AwareDatetime, BaseModel, field_validator, model_validator

from delivery.models import Courier, Delivery
from delivery.services import NoActiveDelivery, Position, courier_locations_record
from project.auth import api_auth
from project.schemas import BODY_ERRORS, ErrorOut

router = Router(tags=["delivery"])

MAX_BATCH = 1000


class PositionIn(Schema):
    lat: float = Field(ge=-90, le=90, description="Latitude in degrees, -90 to 90.")
    lon: float = Field(ge=-180, le=180, description="Longitude in degrees, -180 to 180.")
    time: AwareDatetime = Field(description="When the position was taken, with its time zone (ISO 8601).")
    sequence: int = Field(ge=0, le=2**62, description="The courier app's counter: higher is newer.")

    @field_validator("time")
    @classmethod
    def _not_in_the_future(cls, value: datetime) -> datetime:
        skew = timedelta(seconds=settings.DELIVERY_CLOCK_SKEW_SECONDS)
        now = datetime.now(UTC)
        if value > now + skew:
            raise ValueError(f"time {value.isoformat()} is in the future (server time {now.isoformat()}, allowed skew {skew})")
        if value.year < 1970:
            raise ValueError("time must be after 1970")
        return value


class LocationsIn(BaseModel):
    """One position, or a batch of them as {"positions": [...]}. (A plain pydantic model: ninja's Schema would
    hand the before-validator a wrapper instead of the body.)"""

    positions: list[PositionIn] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, dict) and "positions" not in value:
            return {"positions": [value]}
        return value

    @field_validator("positions")
    @classmethod
    def _distinct_sequences(cls, value: list[PositionIn]) -> list[PositionIn]:
        seen = set()
        for position in value:
            if position.sequence in seen:
                raise ValueError(f"sequence {position.sequence} appears twice in the batch")
            seen.add(position.sequence)
        return value


class LocationsOut(Schema):
    delivery: int
    accepted: int
    duplicates: int


@router.post(
    "/{courier_id}/locations",
    auth=api_auth,
    response={202: LocationsOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut, **BODY_ERRORS},
    summary="Report a courier's positions",
)
def courier_locations(request: HttpRequest, courier_id: int, payload: LocationsIn) -> Status:
    """One position or a batch; each becomes a LocationUpdated of the courier's active delivery.

    Allowed for the courier's own user and for staff. A sequence already reported for the delivery
    is counted in `duplicates` and changes nothing.
    """
    # The usual case in one query: the courier's active delivery, with the courier.
    delivery = Delivery.objects.select_related("courier").filter(courier_id=courier_id, status=Delivery.Status.ACTIVE).first()
    courier = delivery.courier if delivery is not None else Courier.objects.filter(pk=courier_id).first()
    if courier is None:
        return Status(404, {"detail": f"no courier {courier_id}"})
    user = request.auth
    if not (user.is_staff or courier.user_id == user.pk):
        return Status(403, {"detail": f"{user.get_username()!r} may not report positions for courier {courier_id}"})
    positions = [Position(lat=p.lat, lon=p.lon, time=p.time, sequence=p.sequence) for p in payload.positions]
    try:
        recorded = courier_locations_record(courier=courier, positions=positions, delivery=delivery)
    except NoActiveDelivery as exc:
        return Status(409, {"detail": str(exc)})
    return Status(202, {"delivery": recorded.delivery.pk, "accepted": recorded.accepted, "duplicates": recorded.duplicates})
