"""/health/: 200 when every part is up; 503 naming the part that is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from events import publish
from events.models import DeadLetter
from tests.conftest import in_process_worker
from tests.support import Ping, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def health(client: Client, **headers: str) -> tuple[int, dict[str, Any]]:
    response = client.get("/health/", headers=headers)
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


def test_all_up_is_200_and_reports_every_part(client: Client, settings: Any, purge: None) -> None:
    settings.EVENTS_HEALTH_SERVICES = ["testsvc"]
    DeadLetter.objects.create(stage=DeadLetter.Stage.CONSUMER, service="testsvc", reason="not JSON")
    with in_process_worker(settings):
        # The worker's consumer step subscribes just after the worker is up.
        status, body = wait_for(lambda: (answer := health(client))[0] == 200 and answer, message="200") or (0, {})

    assert status == 200 and body["status"] == "ok" and body["failing"] == []
    checks = body["checks"]
    assert set(checks) == {"database", "broker", "relay", "deadLetters", "consumers"}
    assert all(check["ok"] for check in checks.values())
    assert checks["relay"]["lagSeconds"] == 0 and checks["relay"]["unpublished"] == 0
    assert checks["deadLetters"]["open"] == 1 and checks["deadLetters"]["byService"] == {"testsvc": 1}
    assert "1 open dead letters" in checks["deadLetters"]["warning"]  # reported, not a failure
    assert checks["consumers"]["services"] == {"testsvc": 1}


def test_a_stopped_worker_is_named(client: Client, settings: Any, purge: None) -> None:
    settings.EVENTS_HEALTH_SERVICES = ["testsvc", "notifications"]

    status, body = health(client)

    assert status == 503 and body["status"] == "unavailable" and body["failing"] == ["consumers"]
    consumers = body["checks"]["consumers"]
    assert consumers["services"] == {"testsvc": 0, "notifications": 0}
    assert "no consumer on testsvc.events, notifications.events" in consumers["error"]


def test_an_old_unpublished_event_fails_the_relay_check(client: Client, settings: Any, purge: None) -> None:
    settings.EVENTS_HEALTH_SERVICES = []
    settings.EVENTS_HEALTH_MAX_RELAY_LAG_SECONDS = 60
    publish(Ping, {"text": "waiting"}, version="1.0", timestamp=datetime.now(UTC) - timedelta(minutes=5))

    status, body = health(client)

    assert status == 503 and body["failing"] == ["relay"]
    relay = body["checks"]["relay"]
    assert relay["unpublished"] == 1 and relay["lagSeconds"] >= 300
    assert "relay lag" in relay["error"] and "manage.py relay" in relay["error"]


def test_the_broker_down_is_named_within_the_timeout(client: Client, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens there
    settings.EVENTS_HEALTH_SERVICES = ["testsvc"]

    status, body = health(client)

    assert status == 503 and set(body["failing"]) == {"broker", "consumers"}
    assert "RabbitMQ unreachable" in body["checks"]["broker"]["error"]
    assert body["checks"]["broker"]["seconds"] < 5 and body["checks"]["database"]["ok"]


def test_a_browser_gets_the_status_page(client: Client, settings: Any) -> None:
    settings.EVENTS_HEALTH_SERVICES = []
    response = client.get("/health/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.status_code in (200, 503) and response["Content-Type"].startswith("text/html")
