import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.services import UsernameTaken, user_register
from events.models import StoredEvent

pytestmark = pytest.mark.django_db

User = get_user_model()


def registered_events() -> list[dict]:
    return [e.data for e in StoredEvent.objects.filter(event_type="UserRegistered")]


def test_user_register_creates_the_user_and_publishes_user_registered_with_it() -> None:
    user = user_register(username="ada", email="ada@EXAMPLE.com", password="pw-123456")

    event = StoredEvent.objects.get(event_type="UserRegistered")
    assert event.routing_key == "users.UserRegistered" and event.event_version == "1.0"
    assert event.subject == f"user-{user.pk}"
    assert event.data == {
        "userId": str(user.pk),
        "username": "ada",
        "email": "ada@example.com",  # the domain normalised, as Django does
        "dateJoined": user.date_joined.isoformat().replace("+00:00", "Z"),
    }
    assert user.check_password("pw-123456") and not user.is_staff and not user.is_superuser


def test_without_a_password_the_user_cannot_log_in_yet() -> None:
    user = user_register(username="ada", email="ada@example.com")

    assert not user.has_usable_password()
    assert len(registered_events()) == 1


def test_the_user_and_its_event_commit_or_roll_back_together() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        user_register(username="ghost", email="ghost@example.com")
        raise RuntimeError("rolled back")

    assert not User.objects.exists() and not StoredEvent.objects.exists()


def test_a_user_is_not_created_when_its_event_cannot_be_published(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_publish(*args: object, **kwargs: object) -> None:
        raise RuntimeError("event log unavailable")

    monkeypatch.setattr("accounts.services.publish", broken_publish)

    with pytest.raises(RuntimeError):
        user_register(username="ada", email="ada@example.com")

    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("username", "email", "field"),
    [
        ("", "ada@example.com", "username"),
        ("bad name!<script>", "ada@example.com", "username"),
        ("ada\n", "ada@example.com", "username"),
        ("a" * 151, "ada@example.com", "username"),
        ("ada", "", "email"),
        ("ada", "not-an-email", "email"),
        ("ada", "ada@" + "x" * 250 + ".com", "email"),
    ],
    ids=["empty-username", "forbidden-characters", "trailing-newline", "too-long", "no-email", "bad-email", "email-too-long"],
)
def test_a_bad_username_or_email_is_refused_and_nothing_is_created(username: str, email: str, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        user_register(username=username, email=email)

    assert field in refused.value.message_dict
    assert not User.objects.exists() and not StoredEvent.objects.exists()


def test_a_username_of_150_characters_is_accepted() -> None:
    assert user_register(username="a" * 150, email="a@example.com").username == "a" * 150


def test_a_taken_username_is_refused_whatever_its_case() -> None:
    user_register(username="ada", email="ada@example.com")

    for taken in ("ada", "ADA", "Ada"):
        with pytest.raises(UsernameTaken):
            user_register(username=taken, email="other@example.com")

    assert User.objects.count() == 1 and len(registered_events()) == 1


def test_a_superuser_is_registered_like_any_user() -> None:
    user = user_register(username="root", email="root@example.com", password="pw-123456", is_staff=True, is_superuser=True)

    assert user.is_staff and user.is_superuser
    assert [e["username"] for e in registered_events()] == ["root"]


def test_only_user_register_publishes_no_signal_does() -> None:
    user = user_register(username="ada", email="ada@example.com")
    user.first_name = "Ada"
    user.save()
    User.objects.create_user(username="plain", email="plain@example.com")

    assert [e["username"] for e in registered_events()] == ["ada"]
