"""The simulated station: its sensor, its beat job, and the schedule a migration creates."""

import importlib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps as django_apps
from django_celery_beat.models import PeriodicTask

from events.models import StoredEvent
from project.celery import app
from weather import sensors
from weather.models import Region
from weather.tasks import read_simulated_sensors

pytestmark = pytest.mark.django_db

schedules = importlib.import_module("weather.migrations.0002_simulation_schedules")


def test_the_sensor_repeats_and_moves_within_bounds() -> None:
    at = datetime(2026, 3, 1, 15, tzinfo=UTC)
    assert sensors.read("coast", 17, at) == sensors.read("coast", 17, at)
    readings = [sensors.read("coast", 17, at + i * timedelta(minutes=7)) for i in range(24 * 60 // 7 * 3)]
    temperatures = [t for t, _ in readings]
    rains = [r for _, r in readings]
    assert 17 - 9 < min(temperatures) < max(temperatures) < 17 + 9 and max(temperatures) - min(temperatures) > 8
    assert min(rains) == 0 and max(rains) > 4.0  # dry spells and showers above the default alert threshold


def test_the_schedules_exist_once_with_queues_and_known_tasks() -> None:
    tasks = {t.name: t for t in PeriodicTask.objects.filter(name__in=[s[0] for s in schedules.SCHEDULES])}
    assert {(t.task, t.queue, t.interval.every, t.interval.period) for t in tasks.values()} == {
        ("weather.read_simulated_sensors", "weather", 10, "seconds"),
        ("delivery.move_simulated_couriers", "delivery", 2, "seconds"),
    }
    assert all(t.enabled for t in tasks.values())
    app.loader.import_default_modules()  # what a worker does at start: autodiscovers the apps' tasks.py
    for task in tasks.values():
        assert task.task in app.tasks
    schedules.create(django_apps, None)  # the migration again: nothing new
    assert PeriodicTask.objects.filter(name__in=tasks).count() == 2


def test_the_beat_job_publishes_a_reading_per_simulated_region(settings) -> None:
    settings.SIMULATION_ENABLED = False
    assert read_simulated_sensors() == 0 and not Region.objects.exists()
    settings.SIMULATION_ENABLED = True
    settings.WEATHER_RAIN_ALERT_MM_PER_HOUR = 1000
    with time_machine.travel(datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC), tick=False):
        assert read_simulated_sensors() == 3
        Region.objects.filter(slug="south").update(simulated=False)
        assert read_simulated_sensors() == 2
    events = StoredEvent.objects.filter(event_type="TemperatureUpdated").order_by("position")
    assert [(e.subject, e.sequence) for e in events] == [
        ("region-coast", 1),
        ("region-north", 1),
        ("region-south", 1),
        ("region-coast", 2),
        ("region-north", 2),
    ]
    first = events[0]
    assert first.data["station"] == "simulated" and first.data["observedAt"] == "2026-03-01T12:00:00Z"
    assert first.data["temperatureC"] == sensors.read("coast", 17.0, datetime(2026, 3, 1, 12, tzinfo=UTC))[0]
