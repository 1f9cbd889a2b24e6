"""A station's readings → RabbitMQ → history, forecasting and maps, each from its own queue, in real worker
processes; RainAlert → notifications for the users subscribed to the region, once per alert; one consumer's
worker stopped and restarted loses nothing (its events wait in its queue meanwhile)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from kombu import Connection

from events import topology
from events.models import StoredEvent
from forecasting.models import Forecast
from history.models import Reading
from maps.models import RegionWeather
from notifications.models import Notification, RegionSubscription
from tests import streams
from tests.conftest import relay_all
from tests.support import wait_for
from weather.models import Region

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.broker]


def worker(processes: Any, name: str, queues: str) -> Any:
    return processes(name, "-m", "celery", "-A", "project", "worker", "-Q", queues, "-c", "1", "-n", f"{name}@test", "-l", "INFO")


def depth(amqp: Connection, queue: str) -> int:
    return amqp.default_channel.queue_declare(queue=queue, passive=True).message_count


def test_every_consumer_from_its_own_queue_rain_alerts_once_and_a_stopped_worker_loses_nothing(
    processes: Any, purge: None, amqp: Connection, client: Client, settings: Any
) -> None:
    settings.WEATHER_RAIN_ALERT_MM_PER_HOUR = 7.5
    Region.objects.create(slug="fjord", name="Fjord", simulated=False)
    Region.objects.create(slug="dune", name="Dune", simulated=False)
    streams.user("meteo", staff=True)
    ann, bo = streams.user("ann"), streams.user("bo")
    cy = streams.user("cy")
    RegionSubscription.objects.create(user=ann, region="fjord")
    RegionSubscription.objects.create(user=bo, region="fjord")
    RegionSubscription.objects.create(user=cy, region="dune")
    streams.user("dee")  # subscribed to nothing
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    def report(i: int, rain: float = 0.5, slug: str = "fjord") -> None:
        body = {
            "temperature_c": 5 + i / 4,
            "rain_mm_per_hour": rain,
            "observed_at": (start + i * timedelta(seconds=10)).isoformat(),
            "station": "pier",
        }
        response = client.post(
            f"/api/weather/regions/{slug}/readings",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=streams.basic("meteo"),
        )
        assert response.status_code == 202, response.content

    consumers = worker(processes, "consumers", "history,forecasting,notifications")
    maps = worker(processes, "maps", "maps")
    report(1, rain=9.0)
    relay_all()
    # One reading: every consumer updated, each from its own queue; the rain alert reaches the two subscribers of fjord.
    wait_for(lambda: Reading.objects.filter(region="fjord", sequence=1).exists(), timeout=60, message="history")
    wait_for(lambda: Forecast.objects.filter(region="fjord", after_sequence=1).exists(), timeout=60, message="forecasting")
    wait_for(lambda: RegionWeather.objects.filter(region="fjord", sequence=1).exists(), timeout=60, message="maps")
    alerts = wait_for(
        lambda: (
            list(Notification.objects.filter(kind="rain_alert"))
            if Notification.objects.filter(kind="rain_alert").count() == 2
            else None
        ),
        timeout=60,
    )
    assert sorted(n.recipient for n in alerts) == ["ann@example.com", "bo@example.com"]
    assert alerts[0].subject == "Rain alert: Fjord" and "9.0 mm/h" in alerts[0].body
    assert "consuming events for notifications.events, forecasting.events, history.events" in consumers.output()
    assert "consuming events for maps.events" in maps.output()

    # The alert delivered again (a relay that crashed before marking it): still once per user.
    StoredEvent.objects.filter(event_type="RainAlert").update(published_at=None)
    assert relay_all() == 1

    # The maps worker stops: history and forecasting go on, maps' events wait in maps.events.
    assert maps.stop() == 0
    for i in range(2, 12):
        report(i)
    report(12, rain=8.0, slug="dune")
    relay_all()
    wait_for(lambda: Reading.objects.filter(region="fjord").count() == 11, timeout=60, message="history goes on")
    wait_for(
        lambda: Forecast.objects.filter(region="fjord", after_sequence=11).exists(), timeout=60, message="forecasting goes on"
    )
    wait_for(lambda: depth(amqp, topology.event_queue_name("maps")) == 11, timeout=30, message="maps' events waiting")
    assert RegionWeather.objects.get(region="fjord").sequence == 1
    wait_for(lambda: Notification.objects.filter(kind="rain_alert", recipient="cy@example.com").exists(), timeout=60)

    maps = worker(processes, "maps-again", "maps")
    wait_for(lambda: RegionWeather.objects.filter(region="fjord", sequence=11).exists(), timeout=60, message="maps catches up")
    wait_for(lambda: RegionWeather.objects.filter(region="dune", sequence=1).exists(), timeout=60)
    wait_for(lambda: depth(amqp, topology.event_queue_name("maps")) == 0, timeout=30)
    assert Reading.objects.count() == 12
    latest = RegionWeather.objects.get(region="fjord")
    assert latest.temperature_c == 5 + 11 / 4 and latest.older_ignored == 0
    # Once per alert and per subscribed user: two alerts, three notices, none for the unsubscribed.
    assert sorted(Notification.objects.filter(kind="rain_alert").values_list("recipient", flat=True)) == [
        "ann@example.com",
        "bo@example.com",
        "cy@example.com",
    ]
    assert consumers.handle.poll() is None and maps.handle.poll() is None
