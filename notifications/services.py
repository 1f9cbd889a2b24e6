from django.conf import settings
from django.core.mail import send_mail

from notifications.models import Notification


def notification_send(*, recipient: str, kind: str, subject: str, body: str, event_id: str) -> Notification:
    notification = Notification.objects.create(recipient=recipient, kind=kind, subject=subject, body=body, event_id=event_id)
    if recipient:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [recipient])
    return notification


def rain_alert_notify(*, region: str, region_name: str, rain_mm_per_hour: float, observed_at: str, event_id: str) -> int:
    """Notify every user subscribed to `region`, once per alert (a user already notified of this alert is skipped)."""
    from notifications.models import RegionSubscription

    already = set(Notification.objects.filter(event_id=event_id, kind="rain_alert").values_list("recipient", flat=True))
    sent = 0
    for subscription in RegionSubscription.objects.filter(region=region).select_related("user"):
        email = subscription.user.email
        if not email or email in already:
            continue
        already.add(email)
        notification_send(
            recipient=email,
            kind="rain_alert",
            subject=f"Rain alert: {region_name}",
            body=f"{rain_mm_per_hour:.1f} mm/h of rain measured in {region_name} at {observed_at}.",
            event_id=event_id,
        )
        sent += 1
    return sent
