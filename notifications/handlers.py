from accounts.events import UserRegistered, UserRegisteredV1
from events import Event, subscribe
from notifications.services import notification_send
from payroll.events import SalaryCredited, SalaryCreditedV1


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


@subscribe(SalaryCredited, version="1.0", service="notifications")
def send_salary_credited_notice(event: Event[SalaryCreditedV1]) -> None:
    salary = event.data
    notification_send(
        recipient=salary.email,
        kind="salary-credited",
        subject=f"Your salary for {salary.period} has been credited",
        body=f"Hello {salary.username}, {salary.amount} {salary.currency} for {salary.period} has been credited to your account.",
        event_id=event.id,
    )
