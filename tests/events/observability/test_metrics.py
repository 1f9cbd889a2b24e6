"""/metrics: counters from where things happen, gauges from the database, every process's counters added up."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from events import publish
from events.models import DeadLetter
from tests import support
from tests.conftest import relay_all
from tests.support import Flaky, Ping, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client: Client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode()


def value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in the exposition"
    return float(match.group(1))


def test_published_consumed_handled_failed_and_dead_lettered_are_counted(client: Client, worker: Any, settings: Any) -> None:
    ping = {"event_type": "Ping", "service": "testsvc"}
    flaky = {"event_type": "Flaky", "service": "testsvc", "handler": "tests.support.flaky_handler"}
    before = {
        "published": sample("events_published_total", event_type="Ping", topic="tests"),
        "consumed": sample("events_consumed_total", **ping),
        "handled": sample("events_handled_total", event_type="Ping", service="testsvc", handler="tests.support.ping_v1_handler"),
        "failed": sample("events_failed_total", **flaky),
        "dead": sample("events_dead_lettered_total", event_type="Flaky", service="testsvc", stage="handler"),
        "latency": sample("events_handler_duration_seconds_count", service="testsvc", handler="tests.support.ping_v1_handler"),
    }
    support.failures_left["doomed"] = -1
    publish(Ping, {"text": "counted"}, version="1.0")
    publish(Flaky, {"key": "doomed"})
    relay_all()
    wait_for(lambda: DeadLetter.objects.filter(handler="tests.support.flaky_handler").exists(), message="dead letter")

    assert sample("events_published_total", event_type="Ping", topic="tests") == before["published"] + 1
    assert sample("events_consumed_total", **ping) == before["consumed"] + 1
    handled = sample("events_handled_total", event_type="Ping", service="testsvc", handler="tests.support.ping_v1_handler")
    assert handled == before["handled"] + 1
    assert sample("events_failed_total", **flaky) == before["failed"] + 3  # max_attempts=3
    assert sample("events_dead_lettered_total", event_type="Flaky", service="testsvc", stage="handler") == before["dead"] + 1
    latency = sample("events_handler_duration_seconds_count", service="testsvc", handler="tests.support.ping_v1_handler")
    assert latency == before["latency"] + 1
    text = scrape(client)
    assert 'events_published_total{event_type="Ping",topic="tests"}' in text
    assert 'events_handler_duration_seconds_bucket{handler="tests.support.ping_v1_handler",le="0.1",service="testsvc"}' in text
    assert value(text, 'events_dead_letters_open{service="testsvc"}') == 1


def test_relay_lag_and_waiting_events_are_read_from_the_database(client: Client) -> None:
    text = scrape(client)
    assert value(text, "events_relay_lag_seconds") == 0 and value(text, "events_unpublished") == 0

    publish(Ping, {"text": "late"}, version="1.0", timestamp=datetime.now(UTC) - timedelta(minutes=2))
    publish(Ping, {"text": "new"}, version="1.0")

    text = scrape(client)
    assert value(text, "events_relay_lag_seconds") >= 120 and value(text, "events_unpublished") == 2


def test_the_relay_and_worker_processes_counters_are_added_up(
    client: Client, processes: Any, settings: Any, purge: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    settings.PROMETHEUS_MULTIPROC_DIR = str(shared)
    worker = processes(
        "worker", "-m", "celery", "-A", "project", "worker", "-Q", "testsvc", "-c", "2", "-n", "metrics@test", "-l", "INFO"
    )
    wait_for(lambda: " ready." in worker.output() or worker.handle.poll() is not None, timeout=60, message="worker ready")
    processes("relay", "manage.py", "relay")
    for n in range(3):
        publish(Ping, {"text": f"multi {n}"}, version="1.0")

    def handled() -> float:
        text = scrape(client)
        series = 'events_handled_total{event_type="Ping",handler="tests.support.ping_v1_handler",service="testsvc"}'
        return value(text, series) if series in text else 0

    wait_for(lambda: handled() == 3, timeout=120, message="three handled, counted by the worker's pool processes")
    text = scrape(client)
    assert value(text, 'events_published_total{event_type="Ping",topic="tests"}') == 3  # counted by the relay process
    assert value(text, 'events_consumed_total{event_type="Ping",service="testsvc"}') == 3  # by the worker's consumer
    assert value(text, "events_unpublished") == 0
    assert list(shared.glob("*.db"))  # each process's own file
