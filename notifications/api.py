from django.http import HttpRequest
from ninja import Field, Header, Router, Schema, Status

from notifications.models import Notification
from notifications.services import notification_send
from project import api_auth
from project.schemas import BODY_ERRORS

router = Router(tags=["notifications"])


class NotificationIn(Schema):
    recipient: str = Field(max_length=254, json_schema_extra={"format": "email"})
    kind: str = Field(min_length=1, max_length=50)
    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(max_length=10_000)


class NotificationOut(Schema):
    id: int
    kind: str
    recipient: str


@router.post(
    "/",
    response={201: NotificationOut, 200: NotificationOut, **api_auth.AUTH_ERRORS, **BODY_ERRORS},
    auth=api_auth.SERVICE,
    summary="Send a notification (request-driven checkout)",
)
def notification_create(
    request: HttpRequest,
    payload: NotificationIn,
    idempotency_key: str = Header(alias="Idempotency-Key", min_length=1, max_length=150),
) -> Status:
    """Sent once per Idempotency-Key: a retried call returns the first notification (200)."""
    key = f"http:{idempotency_key}"
    existing = Notification.objects.filter(event_id=key).first()
    if existing is not None:
        return Status(200, existing)
    return Status(201, notification_send(event_id=key, **payload.model_dump()))
