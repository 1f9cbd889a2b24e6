import pytest
from django.core.management import call_command

from accounts.services import user_create
from events.models import StoredEvent

pytestmark = pytest.mark.django_db


def test_user_create_publishes_user_registered_with_the_user() -> None:
    user = user_create(username="ada", email="ada@example.com", password="pw-123456")

    event = StoredEvent.objects.get(event_type="UserRegistered")
    assert event.routing_key == "users.UserRegistered"
    assert event.event_version == "1.0"
    assert event.subject == f"user-{user.pk}"
    assert event.data["userId"] == str(user.pk) and event.data["username"] == "ada"


def test_createsuperuser_publishes_user_registered_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "pw-123456")

    call_command("createsuperuser", "--noinput", username="root", email="root@example.com", verbosity=0)

    assert StoredEvent.objects.get(event_type="UserRegistered").data["username"] == "root"


def test_saving_an_existing_user_publishes_nothing_more() -> None:
    user = user_create(username="ada", email="ada@example.com")
    user.first_name = "Ada"
    user.save()

    assert StoredEvent.objects.filter(event_type="UserRegistered").count() == 1
