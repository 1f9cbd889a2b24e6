"""API tokens and the hourly call limit: 401 without a token, 429 with Retry-After when used up, restored hourly once."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from accounts.models import ApiCallLimit, TokenLimitRestoration
from accounts.services import api_token_create, token_limits_restore, user_register
from accounts.tasks import restore_token_limits
from events.models import StoredEvent
from payroll.services import employee_hire, payroll_run

User = get_user_model()


def make_user(name: str = "ada", calls: int = 10) -> tuple[Any, str]:
    user = user_register(username=name, email=f"{name}@example.com", password="pw-correct-horse-42")
    _, key = api_token_create(user=user, name="test")
    ApiCallLimit.objects.filter(user=user).update(calls_per_hour=calls, remaining=calls)
    return user, key


def get(path: str, key: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Client().get(path, headers=headers)


@pytest.mark.django_db
@pytest.mark.parametrize("key", [None, "tok_not-a-real-key", "not even the prefix"])
def test_the_apis_need_a_valid_token(key: str | None) -> None:
    response = get("/api/users/me", key)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert "Authorization: Bearer" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_a_token_is_made_with_the_password_and_each_call_takes_one_unit(settings: Any) -> None:
    settings.API_CALLS_PER_HOUR = 3
    user_register(username="ada", email="ada@example.com", password="pw-correct-horse-42")
    basic = base64.b64encode(b"ada:pw-correct-horse-42").decode()

    assert (
        Client().post("/api/tokens/", {}, content_type="application/json", headers={"Authorization": "Basic x"}).status_code
        == 401
    )
    made = Client().post(
        "/api/tokens/", {"name": "laptop"}, content_type="application/json", headers={"Authorization": f"Basic {basic}"}
    )
    assert made.status_code == 201, made.content
    key = made.json()["key"]

    me = get("/api/users/me", key)
    assert me.status_code == 200
    assert me.json()["username"] == "ada"
    assert me.json()["apiCalls"]["callsPerHour"] == 3
    assert me.json()["apiCalls"]["remaining"] == 2  # this call included
    assert get("/api/users/me/", key).json()["apiCalls"]["remaining"] == 1


@pytest.mark.django_db
def test_sign_up_stays_open_and_uses_no_unit() -> None:
    response = Client().post("/api/users/", {"username": "bob", "email": "bob@example.com"}, content_type="application/json")
    assert response.status_code == 201


@pytest.mark.django_db
def test_a_used_up_limit_answers_429_with_retry_after_at_the_next_refresh() -> None:
    with time_machine.travel(datetime(2026, 11, 26, 13, 59, 30, tzinfo=UTC), tick=False):
        _, key = make_user(calls=2)
        assert [get("/api/users/me", key).status_code for _ in range(2)] == [200, 200]
        refused = get("/api/users/me", key)
        assert refused.status_code == 429
        assert refused["Content-Type"].startswith("application/json")
        assert refused["Retry-After"] == "30"  # the hourly restore at 14:00 UTC
        assert "restored in 30 s" in refused.json()["detail"]
        assert get("/api/payroll/payslips", key).status_code == 429  # the limit is the user's, for every API

    with time_machine.travel(datetime(2026, 11, 26, 14, 0, 2, tzinfo=UTC), tick=False):
        restore_token_limits()
        assert get("/api/users/me", key).status_code == 200


@pytest.mark.django_db
def test_the_limit_is_per_user_shared_by_the_users_tokens() -> None:
    user, key = make_user(calls=2)
    _, other_key = api_token_create(user=user, name="second")
    assert get("/api/users/me", key).status_code == 200
    assert get("/api/users/me", other_key).status_code == 200
    assert get("/api/users/me", key).status_code == 429
    _, bob_key = make_user("bob", calls=1)
    assert get("/api/users/me", bob_key).status_code == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("units", "callers"), [(1, 8), (5, 12)])
def test_concurrent_calls_never_take_more_units_than_are_left(units: int, callers: int) -> None:
    user, key = make_user(calls=units)
    barrier = threading.Barrier(callers)
    statuses: list[int] = []

    def call() -> None:
        try:
            barrier.wait(timeout=10)
            statuses.append(get("/api/users/me", key).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [200] * units + [429] * (callers - units)
    assert ApiCallLimit.objects.get(user=user).remaining == 0


def restorations() -> list[dict[str, Any]]:
    return list(StoredEvent.objects.filter(event_type="TokenLimitsRestored").values_list("data", flat=True))


@pytest.mark.django_db
def test_the_limits_are_restored_and_announced_once_per_utc_hour() -> None:
    user, _ = make_user(calls=4)
    ApiCallLimit.objects.filter(user=user).update(remaining=0)

    with time_machine.travel(datetime(2026, 11, 26, 13, 0, 1, tzinfo=UTC), tick=False):
        assert token_limits_restore() is not None
        assert ApiCallLimit.objects.get(user=user).remaining == 4
        ApiCallLimit.objects.filter(user=user).update(remaining=1)
    with time_machine.travel(datetime(2026, 11, 26, 13, 59, 59, tzinfo=UTC), tick=False):
        assert token_limits_restore() is None  # a retry, a second beat: same hour, nothing
        assert restore_token_limits() == "already restored this hour"
        assert ApiCallLimit.objects.get(user=user).remaining == 1
    with time_machine.travel(datetime(2026, 11, 26, 14, 0, 0, tzinfo=UTC), tick=False):
        assert token_limits_restore() is not None
        assert ApiCallLimit.objects.get(user=user).remaining == 4

    assert restorations() == [
        {"hour": "2026-11-26T13:00:00Z", "users": 1, "callsPerHour": 1000},
        {"hour": "2026-11-26T14:00:00Z", "users": 1, "callsPerHour": 1000},
    ]
    event = StoredEvent.objects.filter(event_type="TokenLimitsRestored").first()
    assert event.routing_key == "users.TokenLimitsRestored"


@pytest.mark.django_db(transaction=True)
def test_two_restores_in_the_same_hour_at_the_same_time_restore_and_publish_once() -> None:
    make_user(calls=4)
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def restore() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(restore_token_limits())
        finally:
            connections.close_all()

    with time_machine.travel(datetime(2026, 11, 26, 15, 30, tzinfo=UTC), tick=True):
        threads = [threading.Thread(target=restore) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert sorted(results) == ["already restored this hour"] * 3 + ["limits restored for 2026-11-26 15:00 UTC"]
    assert TokenLimitRestoration.objects.count() == 1
    assert len(restorations()) == 1


@pytest.mark.django_db
def test_an_employee_reads_their_payslips_with_a_token() -> None:
    user, key = make_user()
    employee_hire(user=user, monthly_salary=Decimal("2500.00"), currency="eur")
    with time_machine.travel(datetime(2026, 11, 2, tzinfo=UTC), tick=False):
        payroll_run(period=date(2026, 10, 1))
    payslips = get("/api/payroll/payslips", key).json()
    assert [(p["period"], p["amount"], p["currency"]) for p in payslips] == [("2026-10", "2500.00", "EUR")]
    _, bob_key = make_user("bob")
    assert get("/api/payroll/payslips", bob_key).json() == []


@pytest.mark.django_db
@pytest.mark.parametrize("credentials", [b"a\x00da:pw", b"\x00:\x00", b"ada:pw\x00"])
def test_a_username_no_database_can_hold_is_401_not_a_server_error(credentials: bytes) -> None:
    headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
    response = Client().post("/api/tokens/", {}, content_type="application/json", headers=headers)
    assert response.status_code == 401 and response["Content-Type"].startswith("application/json")
