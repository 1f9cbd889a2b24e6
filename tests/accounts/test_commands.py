"""createsuperuser and demo_setup register users through accounts.services.user_register."""

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from events.models import StoredEvent

pytestmark = pytest.mark.django_db

User = get_user_model()


def registered() -> list[dict[str, Any]]:
    return [e.data for e in StoredEvent.objects.filter(event_type="UserRegistered")]


def test_createsuperuser_is_the_accounts_command() -> None:
    from django.core.management import get_commands

    assert get_commands()["createsuperuser"] == "accounts"


def test_createsuperuser_registers_the_superuser_and_publishes_user_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "pw-123456")
    out = io.StringIO()

    call_command("createsuperuser", "--noinput", username="root", email="root@example.com", stdout=out)

    user = User.objects.get(username="root")
    assert user.is_superuser and user.is_staff and user.check_password("pw-123456")
    assert registered() == [
        {
            "userId": str(user.pk),
            "username": "root",
            "email": "root@example.com",
            "dateJoined": registered()[0]["dateJoined"],
        }
    ]
    assert "Superuser created successfully." in out.getvalue()


def test_createsuperuser_takes_username_and_email_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "envroot")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "envroot@example.com")

    call_command("createsuperuser", "--noinput", verbosity=0)

    assert [e["email"] for e in registered()] == ["envroot@example.com"]
    assert not User.objects.get(username="envroot").has_usable_password()


def test_createsuperuser_creates_nothing_when_the_event_cannot_be_written(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_publish(*args: object, **kwargs: object) -> None:
        raise RuntimeError("event log unavailable")

    monkeypatch.setattr("accounts.services.publish", broken_publish)

    with pytest.raises(RuntimeError):
        call_command("createsuperuser", "--noinput", username="root", email="root@example.com", verbosity=0)

    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"username": "root"}, "You must use --email with --noinput"),
        ({"email": "root@example.com"}, "You must use --username with --noinput"),
        ({"username": "root", "email": "nope"}, "Enter a valid email address"),
        ({"username": "bad name!", "email": "root@example.com"}, "Enter a valid username"),
    ],
)
def test_createsuperuser_refuses_bad_input_and_creates_nothing(options: dict[str, str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("createsuperuser", "--noinput", verbosity=0, **options)

    assert not User.objects.exists() and not StoredEvent.objects.exists()


def test_createsuperuser_asks_for_what_is_missing_when_interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["", "root@example.com"])  # an empty email first: asked again
    passwords = iter(["1", "1", "pw-123456", "pw-123456"])  # a weak one first: refused, not bypassed
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers) if "Bypass" not in prompt else "n")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(passwords))

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = io.StringIO()
    call_command("createsuperuser", username="root", stdin=Tty(), stdout=io.StringIO(), stderr=err)

    assert User.objects.get(username="root").check_password("pw-123456")
    assert [e["email"] for e in registered()] == ["root@example.com"]
    assert "email address is required" in err.getvalue() and "too short" in err.getvalue()


def test_demo_setup_registers_the_demo_superuser_once_and_says_its_event_comes_first(settings: Any) -> None:
    settings.DEBUG = True
    out = io.StringIO()

    call_command("demo_setup", stdout=out)
    call_command("demo_setup", stdout=io.StringIO())

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("admin")
    # The superuser first, then the demo employees, each registered once however often it runs.
    assert registered()[0] == {
        "userId": str(admin.pk),
        "username": "admin",
        "email": "admin@example.com",
        "dateJoined": registered()[0]["dateJoined"],
    }
    assert [e["username"] for e in registered()] == ["admin", "grace", "linus", "margaret"]
    assert "welcome email to admin@example.com" in out.getvalue()


def test_demo_setup_seeds_employees_and_an_api_token_once(settings: Any) -> None:
    from accounts.models import ApiToken
    from payroll.models import Employee

    settings.DEBUG = True
    out = io.StringIO()

    call_command("demo_setup", stdout=out)
    call_command("demo_setup", stdout=io.StringIO())

    assert sorted(Employee.objects.values_list("user__username", flat=True)) == ["grace", "linus", "margaret"]
    assert all(e.monthly_salary > 0 and len(e.currency) == 3 for e in Employee.objects.all())
    token = ApiToken.objects.get(user__username="admin")
    assert token.prefix in out.getvalue() and "Authorization: Bearer" in out.getvalue()


def test_demo_setup_refuses_to_run_in_production(settings: Any) -> None:
    settings.DEBUG = False

    with pytest.raises(CommandError, match="development"):
        call_command("demo_setup")

    assert not User.objects.exists()
