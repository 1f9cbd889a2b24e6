"""POST /api/weather/regions/{slug}/readings: a real station's readings."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from events.models import StoredEvent
from tests import streams
from weather.models import Region

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():  # noqa: ANN201
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def region() -> Region:
    return Region.objects.create(slug="fjord", name="Fjord", simulated=False)


def post(client: Client, body: object, auth: str | None, slug: str = "fjord") -> object:
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.post(f"/api/weather/regions/{slug}/readings", json.dumps(body), content_type="application/json", **headers)


def reading(**overrides: object) -> dict:
    return {"temperature_c": 8.5, "rain_mm_per_hour": 0.2, "observed_at": NOW.isoformat(), "station": "pier", **overrides}


def test_a_reading_publishes_temperature_updated_with_the_regions_next_sequence(client: Client, region: Region, settings) -> None:
    streams.user("meteo", staff=True)
    settings.WEATHER_RAIN_ALERT_MM_PER_HOUR = 6.5
    first = post(client, reading(), streams.basic("meteo"))
    assert first.status_code == 202 and first.json() == {"region": "fjord", "sequence": 1, "rain_alert": False}
    second = post(client, reading(rain_mm_per_hour=6.6, temperature_c=-3.25), streams.basic("meteo"))
    assert second.json() == {"region": "fjord", "sequence": 2, "rain_alert": True}
    at_threshold = post(client, reading(rain_mm_per_hour=6.5), streams.basic("meteo"))
    assert at_threshold.json()["rain_alert"] is False
    temps = list(StoredEvent.objects.filter(event_type="TemperatureUpdated").order_by("position"))
    assert [(e.subject, e.sequence) for e in temps] == [("region-fjord", 1), ("region-fjord", 2), ("region-fjord", 3)]
    assert temps[1].data == {
        "region": "fjord",
        "temperatureC": -3.25,
        "rainMmPerHour": 6.6,
        "observedAt": "2026-03-01T12:00:00Z",
        "station": "pier",
    }
    [alert] = StoredEvent.objects.filter(event_type="RainAlert")
    assert alert.topic == "weather" and alert.subject == "region-fjord"
    assert alert.data["rainMmPerHour"] == 6.6 and alert.data["thresholdMmPerHour"] == 6.5 and alert.data["regionName"] == "Fjord"


def test_only_staff_may_report_and_anonymous_gets_401(client: Client, region: Region) -> None:
    streams.user("walker")
    assert post(client, reading(), None).status_code == 401
    response = post(client, reading(), streams.basic("walker"))
    assert response.status_code == 403 and response.json() == {"detail": "only staff accounts may report readings"}
    assert not StoredEvent.objects.exists()


def test_unknown_region_404(client: Client, region: Region) -> None:
    streams.user("meteo", staff=True)
    response = post(client, reading(), streams.basic("meteo"), slug="atlantis")
    assert response.status_code == 404 and response.json() == {"detail": "no region 'atlantis'"}


@pytest.mark.parametrize(
    ("overrides", "loc", "says"),
    [
        ({"temperature_c": 61}, "temperature_c", "less than or equal to 60"),
        ({"temperature_c": -100}, "temperature_c", "greater than or equal to -90"),
        ({"rain_mm_per_hour": -0.1}, "rain_mm_per_hour", "greater than or equal to 0"),
        ({"observed_at": (NOW + timedelta(minutes=5)).isoformat()}, "observed_at", "in the future"),
        ({"observed_at": "2026-03-01T11:00:00"}, "observed_at", "timezone"),
        ({"station": ""}, "station", "at least 1"),
    ],
)
def test_bad_readings_get_422(client: Client, region: Region, overrides: dict, loc: str, says: str) -> None:
    streams.user("meteo", staff=True)
    response = post(client, reading(**overrides), streams.basic("meteo"))
    assert response.status_code == 422
    assert any(e["loc"][-1] == loc and says in e["msg"] for e in response.json()["detail"]), response.json()
    assert not StoredEvent.objects.exists()
