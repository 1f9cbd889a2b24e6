"""End to end: a new user → UserRegistered in the log → relay process → RabbitMQ → worker process → welcome email."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from events.models import InboxEntry, StoredEvent
from notifications.models import Notification
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_new_user_gets_a_welcome_email_through_relay_broker_and_worker(processes: object, purge: None) -> None:
    relay = processes("relay", "manage.py", "relay")
    worker = processes(
        "worker",
        "-m",
        "celery",
        "-A",
        "project",
        "worker",
        "-Q",
        "notifications",
        "-c",
        "1",
        "-n",
        "notifications@test",
        "-l",
        "INFO",
    )

    user = get_user_model().objects.create_user(username="ada", email="ada@example.com", password="pw-123456")

    event = StoredEvent.objects.get(event_type="UserRegistered")
    assert event.topic == "users" and event.subject == f"user-{user.pk}"
    assert event.data["email"] == "ada@example.com"
    notification = wait_for(lambda: Notification.objects.filter(kind="welcome", recipient="ada@example.com").first(), timeout=60)
    assert notification.event_id == str(event.event_id)
    assert (
        InboxEntry.objects.filter(event_id=str(event.event_id), handler="notifications.handlers.send_welcome_email").count() == 1
    )
    event.refresh_from_db()
    assert event.published_at is not None
    wait_for(lambda: "Welcome aboard" in worker.output(), message="the email on the console backend")
    assert relay.handle.poll() is None and worker.handle.poll() is None
    assert relay.stop() == 0  # SIGTERM: a clean stop
    assert "relay stopped" in relay.output()


def test_the_users_api_creates_a_user_and_publishes_user_registered() -> None:
    response = Client().post(
        "/api/users/",
        {"username": "grace", "email": "grace@example.com", "password": "pw-123456"},
        content_type="application/json",
    )

    assert response.status_code == 201
    assert StoredEvent.objects.filter(event_type="UserRegistered", data__username="grace").count() == 1
    assert (
        Client().post("/api/users/", {"username": "grace", "email": "g@example.com"}, content_type="application/json").status_code
        == 409
    )
    assert Client().post("/api/users/", "nope", content_type="application/json").status_code == 400


def test_a_user_created_in_a_rolled_back_transaction_publishes_nothing() -> None:
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        get_user_model().objects.create_user(username="ghost", email="ghost@example.com")
        raise RuntimeError("rolled back")

    assert not StoredEvent.objects.exists()
