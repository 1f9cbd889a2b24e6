from accounts.events import UserRegistered, UserRegisteredV1
from events import Event, subscribe
from notifications.services import notification_send, rain_alert_notify
from weather.events import RainAlert, RainAlertV1


@subscribe(UserRegistered, version="1.0", service="notifications")
def send_welcome_email(event: Event[UserRegisteredV1]) -> None:
    user = event.data
    notification_send(
        recipient=user.email,
        kind="welcome",
        subject="Welcome aboard",
        body=f"Hello {user.username}, your account is ready.",
        event_id=event.id,
    )


@subscribe(RainAlert, version="1.0", service="notifications")
def send_rain_alert(event: Event[RainAlertV1]) -> None:
    alert = event.data
    rain_alert_notify(
        region=alert.region,
        region_name=alert.regionName,
        rain_mm_per_hour=alert.rainMmPerHour,
        observed_at=alert.observedAt.isoformat(),
        event_id=event.id,
    )
