from accounts.events import UserRegistered, UserRegisteredV1
from events import Event, subscribe
from notifications.services import notification_send


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
