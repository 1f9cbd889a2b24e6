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
