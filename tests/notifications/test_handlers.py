import pytest
from django.core import mail

from accounts.events import UserRegistered
from events import subscriptions
from events.envelope import Envelope
from events.handling import run_once
from notifications.models import Notification

pytestmark = pytest.mark.django_db


def test_the_welcome_email_goes_out_once_per_user_registered() -> None:
    envelope = Envelope(
        event_type="UserRegistered",
        event_version="1.0",
        source="accounts",
        data={"userId": "7", "username": "ada", "email": "ada@example.com", "dateJoined": "2025-07-07T14:05:00Z"},
    )
    subscription = subscriptions.get("notifications.handlers.send_welcome_email")
    assert subscription.event_type is UserRegistered and subscription.service == "notifications"

    assert run_once(subscription, envelope) is True
    assert run_once(subscription, envelope) is False  # a duplicate delivery

    assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    assert "Hello ada" in mail.outbox[0].body
    notification = Notification.objects.get()
    assert (notification.kind, notification.recipient, notification.event_id) == ("welcome", "ada@example.com", envelope.event_id)


def test_the_salary_credited_notice_goes_out_once_per_salary_credited() -> None:
    from payroll.events import SalaryCredited

    envelope = Envelope(
        event_type="SalaryCredited",
        event_version="1.0",
        source="payroll",
        data={
            "payslipId": "3",
            "employeeId": "2",
            "userId": "7",
            "username": "grace",
            "email": "grace@example.com",
            "period": "2026-10",
            "amount": "4200.00",
            "currency": "EUR",
            "creditedAt": "2026-11-01T09:00:00Z",
        },
    )
    subscription = subscriptions.get("notifications.handlers.send_salary_credited_notice")
    assert subscription.event_type is SalaryCredited and subscription.service == "notifications"

    assert run_once(subscription, envelope) is True
    assert run_once(subscription, envelope) is False  # a duplicate delivery

    assert [m.to for m in mail.outbox] == [["grace@example.com"]]
    assert mail.outbox[0].subject == "Your salary for 2026-10 has been credited"
    assert "4200.00 EUR for 2026-10" in mail.outbox[0].body
    notification = Notification.objects.get()
    assert (notification.kind, notification.event_id) == ("salary-credited", envelope.event_id)
