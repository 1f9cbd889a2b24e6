"""Security checks of the chaos suite: production settings, JSON only everywhere, who may do what, body limits.

(RabbitMQ's refusal of `guest` from other addresses than loopback is checked on the suite's own node,
in test_own_broker.py.)
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import ApiCallLimit
from accounts.services import api_token_create
from events.models import DeadLetter, StoredEvent
from tests.chaos.harness import ROOT, Stack
from tests.chaos.test_wire import Executed
from tests.conftest import raw_publish
from tests.support import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]


def test_check_deploy_is_clean_with_production_settings() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DEBUG": "False",
        "SECRET_KEY": "chaos-" + os.urandom(48).hex(),
        "ALLOWED_HOSTS": "example.com",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_a_replayed_pickle_is_refused_again_and_never_executed(stack: Stack, tmp_path: Path) -> None:
    from kombu import Connection

    marker = tmp_path / "executed"
    stack.worker("chaos", ["chaos"], concurrency=1)
    with Connection(stack.broker_url) as conn:
        conn.default_channel.queue_purge("chaos.events.dlq")
        raw_publish(conn, pickle.dumps(Executed(marker)), "chaos.Mark", content_type="application/x-python-serialize")
    first = wait_for(lambda: DeadLetter.objects.filter(service="chaos").first(), timeout=60, message="the dead letter")
    assert "JSON only" in first.reason
    replay = (
        "from events.deadletters import dead_letter_replay; from events.models import DeadLetter; "
        f"dead_letter_replay(dead_letter=DeadLetter.objects.get(pk={first.pk}))"
    )
    done = subprocess.run(  # as the admin's Replay action does, in a process of the stack
        [sys.executable, "manage.py", "shell", "-c", replay],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: DeadLetter.objects.filter(service="chaos").count() == 2, timeout=60, message="the replay refused")
    again = DeadLetter.objects.filter(service="chaos").exclude(pk=first.pk).get()
    assert "JSON only" in again.reason and again.raw_body == first.raw_body
    assert not marker.exists(), "a pickle was executed"
    assert StoredEvent.objects.count() == 0


def test_celery_accepts_json_only() -> None:
    from django.conf import settings

    from project.celery import app

    assert settings.CELERY_ACCEPT_CONTENT == ["json"] and app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == app.conf.result_serializer == app.conf.event_serializer == "json"


def test_the_admin_requires_staff(client: Client) -> None:
    User = get_user_model()
    User.objects.create_user("plain", "plain@example.com", "pw-plain-12345")
    User.objects.create_user("staff", "staff@example.com", "pw-staff-12345", is_staff=True, is_superuser=True)
    assert client.get("/admin/").status_code == 302
    client.login(username="plain", password="pw-plain-12345")
    response = client.get("/admin/events/deadletter/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.logout()
    client.login(username="staff", password="pw-staff-12345")
    assert client.get("/admin/events/deadletter/").status_code == 200


STATE_CHANGING = [
    ("/api/orders/", {"items": [{"productId": "P001", "quantity": 1}], "shippingAddress": {"city": "A", "pincode": "1"}}),
    ("/api/orders/ORD1/cancel", {"reason": "x"}),
    ("/api/checkout/sync", {}),
    ("/api/payments/charges", {"orderId": "ORD1", "amount": "1.00", "currency": "EUR"}),
    ("/api/notifications/", {"recipient": "a@example.com", "subject": "s", "body": "b"}),
    ("/api/couriers/1/locations", {"lat": 1, "lon": 1, "time": "2026-01-01T00:00:00Z", "sequence": 1}),
    ("/api/weather/regions/x/readings", {"temperature_c": 1}),
    ("/api/tokens/", {"name": "t"}),
]


@pytest.mark.parametrize(("path", "body"), STATE_CHANGING, ids=[p for p, _ in STATE_CHANGING])
def test_state_changing_apis_require_authentication(client: Client, path: str, body: dict) -> None:
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code in (401, 403), (path, response.status_code, response.content[:200])
    assert response.json()["detail"]
    assert StoredEvent.objects.count() == 0


def test_api_tokens_are_held_to_their_hourly_limit(client: Client) -> None:
    user = get_user_model().objects.create_user("limited", "limited@example.com", "pw-limited-12345")
    _, key = api_token_create(user=user, name="laptop")
    ApiCallLimit.objects.update_or_create(user=user, defaults={"calls_per_hour": 2, "remaining": 2})
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert [client.get("/api/users/me", **auth).status_code for _ in range(2)] == [200, 200]
    refused = client.get("/api/users/me", **auth)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0 and refused.json()["detail"]
    assert client.get("/api/users/me", HTTP_AUTHORIZATION="Bearer tok_wrong").status_code == 401


@pytest.mark.parametrize("path", ["/api/users/", "/api/orders/", "/api/couriers/1/locations", "/api/payments/charges"])
def test_oversized_bodies_are_refused_with_413_json(client: Client, path: str) -> None:
    from django.conf import settings

    get_user_model().objects.create_user("big", "big@example.com", "pw-big-1234567", is_staff=True)
    credentials = {
        "HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"big:pw-big-1234567").decode(),
        "HTTP_X_SERVICE_KEY": settings.SERVICE_API_KEY,
    }
    started = time.monotonic()
    body = b'{"x": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    response = client.post(path, data=body, content_type="application/json", **credentials)
    assert response.status_code == 413, (path, response.status_code)
    assert response["Content-Type"].startswith("application/json") and response.json()["detail"]
    assert time.monotonic() - started < 10
