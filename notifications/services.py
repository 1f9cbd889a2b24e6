from django.conf import settings
from django.core.mail import send_mail

from notifications.models import Notification


def notification_send(*, recipient: str, kind: str, subject: str, body: str, event_id: str) -> Notification:
    notification = Notification.objects.create(recipient=recipient, kind=kind, subject=subject, body=body, event_id=event_id)
    if recipient:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient])
    return notification
