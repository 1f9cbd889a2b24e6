"""End to end: a new user → UserRegistered in the log → relay process → RabbitMQ → worker process → welcome email."""

import re

import pytest

from accounts.services import user_register
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

    user = user_register(username="ada", email="ada@example.com", password="pw-123456")

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
    wait_for(lambda: "Welcome aboard" in worker.output(), message="the email in the worker's log")
    assert relay.handle.poll() is None and worker.handle.poll() is None
    assert relay.stop() == 0  # SIGTERM: a clean stop
    assert "relay stopped" in relay.output()
    worker.stop()

    # The email shows once, as one INFO record of the mail logger, and no log line prints twice.
    log = worker.output()
    assert re.findall(r"^.* (\w+) project\.mail email to (.*)$", log, re.MULTILINE) == [("INFO", "ada@example.com")]
    assert log.count("Subject: Welcome aboard") == 1 and log.count("Hello ada, your account is ready.") == 1
    assert "celery.redirected" not in log
    records = [line.split(" ", 2)[-1] for line in log.splitlines() if re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", line)]
    assert records and len(records) == len(set(records)), log
    assert not [line for line in log.splitlines() if line.startswith("[20")]  # Celery's own format: a second handler
