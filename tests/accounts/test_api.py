import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from events.models import StoredEvent

pytestmark = pytest.mark.django_db

User = get_user_model()
GOOD_PASSWORD = "correct horse battery staple"


def post(body: Any, path: str = "/api/users/", content_type: str = "application/json") -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return Client(raise_request_exception=False).post(path, data, content_type=content_type)


def assert_json_error(response: Any, status: int) -> Any:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    detail = response.json()["detail"]
    assert detail
    return detail


def assert_nothing_created() -> None:
    assert not User.objects.exists()
    assert not StoredEvent.objects.exists()


@pytest.mark.parametrize("path", ["/api/users/", "/api/users"])
def test_registering_creates_the_user_and_publishes_user_registered(path: str) -> None:
    response = post({"username": "ada", "email": "ada@example.com", "password": GOOD_PASSWORD}, path)

    assert response.status_code == 201
    user = User.objects.get()
    assert response.json() == {"id": user.pk, "username": "ada", "email": "ada@example.com"}
    assert user.check_password(GOOD_PASSWORD)
    event = StoredEvent.objects.get(event_type="UserRegistered")
    assert event.data["email"] == "ada@example.com" and event.data["userId"] == str(user.pk)


def test_the_password_may_be_left_out() -> None:
    assert post({"username": "ada", "email": "ada@example.com"}).status_code == 201
    assert not User.objects.get().has_usable_password()


# Each reported case, and other members of its class.
BAD_FIELDS = {
    "empty username": ({"username": ""}, "username"),
    "blank username": ({"username": "   "}, "username"),
    "null username": ({"username": None}, "username"),
    "number as username": ({"username": 42}, "username"),
    "missing username": ({"username": ...}, "username"),
    "markup in username": ({"username": "bad name!<script>"}, "username"),
    "slash in username": ({"username": "ada/../root"}, "username"),
    "emoji in username": ({"username": "ada😀"}, "username"),
    "newline after username": ({"username": "ada\n"}, "username"),
    "200-character username": ({"username": "a" * 200}, "username"),
    "151-character username": ({"username": "a" * 151}, "username"),
    "password 1": ({"password": "1"}, "password"),
    "all-digit password": ({"password": "73829104658"}, "password"),
    "common password": ({"password": "password123"}, "password"),
    "password like the username": ({"username": "adalovelace", "password": "adalovelace1"}, "password"),
    "empty password": ({"password": ""}, "password"),
    "number as password": ({"password": 12345678}, "password"),
    "bad email": ({"email": "not-an-email"}, "email"),
    "empty email": ({"email": ""}, "email"),
    "null email": ({"email": None}, "email"),
    "missing email": ({"email": ...}, "email"),
}


@pytest.mark.parametrize(("change", "field"), BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_bad_data_gets_a_422_naming_the_field_and_creates_nothing(change: dict[str, Any], field: str) -> None:
    body = {"username": "ada", "email": "ada@example.com", "password": GOOD_PASSWORD, **change}
    body = {key: value for key, value in body.items() if value is not ...}

    detail = assert_json_error(post(body), 422)

    assert any(entry["loc"][-1] == field and entry["msg"] for entry in detail), detail
    assert_nothing_created()


def test_a_150_character_username_is_fine() -> None:
    assert post({"username": "a" * 150, "email": "ada@example.com"}).status_code == 201


@pytest.mark.parametrize("size", [5 * 1024 * 1024, 2_621_440 + 1])
def test_a_body_over_the_upload_limit_gets_a_413(size: int) -> None:
    body = json.dumps({"username": "ada", "email": "ada@example.com", "password": "x" * size})

    detail = assert_json_error(post(body), 413)

    assert "larger than" in detail
    assert_nothing_created()


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        ("", 422, "Field required"),
        ("[1, 2]", 422, "Field required"),
        ('"ada"', 422, "Field required"),
    ],
    ids=["broken-json", "not-utf8", "empty-body", "array", "string"],
)
def test_a_body_that_is_not_a_json_object_gets_a_4xx_that_says_so(body: str, status: int, says: str) -> None:
    detail = assert_json_error(post(body), status)

    assert says in json.dumps(detail)
    assert_nothing_created()


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"])
def test_a_body_not_sent_as_json_gets_a_415(content_type: str) -> None:
    detail = assert_json_error(post('{"username": "ada", "email": "ada@example.com"}', content_type=content_type), 415)

    assert "Content-Type: application/json" in detail
    assert_nothing_created()


def test_a_taken_username_gets_a_409_whatever_its_case() -> None:
    assert post({"username": "grace", "email": "grace@example.com"}).status_code == 201

    for taken in ("grace", "GRACE"):
        assert "is taken" in assert_json_error(post({"username": taken, "email": "g@example.com"}), 409)

    assert User.objects.count() == 1 and StoredEvent.objects.count() == 1


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG", "production"])
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/users/", 405),
        ("put", "/api/users", 405),
        ("delete", "/api/users/", 405),
        ("get", "/api/", 404),
        ("post", "/api/nothing-here", 404),
        ("get", "/api/users/1/", 404),
    ],
)
def test_unknown_paths_and_methods_get_json_too(method: str, path: str, status: int, debug: bool, settings: Any) -> None:
    settings.DEBUG = debug

    response = getattr(Client(raise_request_exception=False), method)(path)

    detail = assert_json_error(response, status)
    assert path in detail
    if status == 405:
        assert response["Allow"] == "POST"


@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG", "production"])
def test_an_unexpected_error_is_json_not_a_debug_page(debug: bool, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DEBUG = debug

    def broken(**kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("accounts.api.user_register", broken)

    detail = assert_json_error(post({"username": "ada", "email": "ada@example.com"}), 500)

    assert "a bug" not in detail and "Traceback" not in detail


def test_a_database_outage_is_a_503_to_try_again_not_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import OperationalError

    def unreachable(**kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("accounts.api.user_register", unreachable)

    response = post({"username": "ada", "email": "ada@example.com"})

    assert "unavailable" in assert_json_error(response, 503)
    assert response["Retry-After"] == "5"


def test_the_openapi_document_and_the_docs_are_served() -> None:
    client = Client()

    document = client.get("/api/openapi.json").json()
    operation = document["paths"]["/api/users/"]["post"]
    assert {"201", "400", "409", "413", "415", "422"} <= set(operation["responses"])
    assert client.get("/api/docs").status_code == 200


def test_a_validation_error_from_the_service_is_a_422_in_the_same_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ValidationError

    def refuses(**kwargs: object) -> None:
        raise ValidationError({"email": ValidationError("That domain takes no new users.", code="domain")})

    monkeypatch.setattr("accounts.api.user_register", refuses)

    detail = assert_json_error(post({"username": "ada", "email": "ada@example.com"}), 422)

    assert detail == [{"type": "domain", "loc": ["body", "payload", "email"], "msg": "That domain takes no new users."}]
