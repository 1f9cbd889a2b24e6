import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from events.models import StoredEvent

pytestmark = pytest.mark.django_db

User = get_user_model()
ADD = reverse("admin:auth_user_add")


def add_form(**fields: str) -> dict[str, str]:
    return {
        "username": "ada",
        "email": "ada@example.com",
        "usable_password": "true",
        "password1": "correct horse battery staple",
        "password2": "correct horse battery staple",
        **fields,
    }


def test_the_add_user_form_asks_for_the_email(admin_client: Client) -> None:
    form = admin_client.get(ADD).context["adminform"].form

    assert "email" in form.fields and form.fields["email"].required


def test_adding_a_user_in_the_admin_publishes_user_registered_with_the_email(admin_client: Client) -> None:
    response = admin_client.post(ADD, add_form())

    user = User.objects.get(username="ada")
    assert response.status_code == 302 and response["Location"] == reverse("admin:auth_user_change", args=[user.pk])
    assert user.email == "ada@example.com" and user.check_password("correct horse battery staple")
    event = StoredEvent.objects.get(event_type="UserRegistered")
    assert event.data["email"] == "ada@example.com" and event.data["userId"] == str(user.pk)
    assert event.subject == f"user-{user.pk}"


def test_a_user_added_without_a_password_is_registered_too(admin_client: Client) -> None:
    admin_client.post(ADD, add_form(usable_password="false", password1="", password2=""))

    user = User.objects.get(username="ada")
    assert not user.has_usable_password()
    assert StoredEvent.objects.get(event_type="UserRegistered").data["username"] == "ada"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": ""}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"username": "bad name!"}, "username"),
        ({"password1": "1", "password2": "1"}, "password2"),
        ({"username": "ADMIN"}, "username"),  # the admin_client's own user, in other case
    ],
    ids=["no-email", "bad-email", "bad-username", "weak-password", "taken-username"],
)
def test_a_bad_add_form_shows_the_error_and_registers_no_one(admin_client: Client, fields: dict[str, str], field: str) -> None:
    users_before = User.objects.count()

    response = admin_client.post(ADD, add_form(**fields))

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert User.objects.count() == users_before and not StoredEvent.objects.exists()


def test_changing_a_user_in_the_admin_publishes_nothing(admin_client: Client) -> None:
    admin_client.post(ADD, add_form())
    user = User.objects.get(username="ada")

    response = admin_client.post(
        reverse("admin:auth_user_change", args=[user.pk]),
        {
            "username": "ada",
            "email": "ada@elsewhere.example",
            "is_active": "on",
            "date_joined_0": "2025-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).email == "ada@elsewhere.example"
    assert StoredEvent.objects.filter(event_type="UserRegistered").count() == 1
