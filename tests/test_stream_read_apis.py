"""The consumers' read APIs: what each holds, and 404 JSON for what it does not know."""

from datetime import UTC, datetime

import pytest
from django.test import Client

from analytics.services import route_point_add
from forecasting.services import forecast_update
from history.services import reading_store
from maps.services import region_weather_update
from restaurant.services import progress_update
from tests import streams
from tracking.services import position_update

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_read_apis(client: Client) -> None:
    for p in streams.route(start=AT, count=5):
        position_update(delivery_id="4", courier_id="9", sequence=p.sequence, lat=p.lat, lon=p.lon, recorded_at=p.time)
        route_point_add(delivery_id="4", sequence=p.sequence, lat=p.lat, lon=p.lon, recorded_at=p.time)
        progress_update(
            delivery_id="4",
            sequence=p.sequence,
            lat=p.lat,
            lon=p.lon,
            recorded_at=p.time,
            pickup=streams.PICKUP,
            dropoff=streams.DROPOFF,
        )
    for sequence in (1, 2):
        reading_store(
            region="fjord",
            sequence=sequence,
            temperature_c=4.0 + sequence,
            rain_mm_per_hour=0,
            observed_at=AT.replace(minute=sequence),
            station="s",
            event_id=f"e{sequence}",
        )
        region_weather_update(
            region="fjord",
            sequence=sequence,
            temperature_c=4.0 + sequence,
            rain_mm_per_hour=0,
            observed_at=AT.replace(minute=sequence),
        )
        forecast_update(region="fjord", sequence=sequence, observed_at=AT.replace(minute=sequence), temperature_c=4.0 + sequence)

    position = client.get("/api/tracking/deliveries/4/position").json()
    assert (position["sequence"], position["lat"], position["lon"]) == (5, *streams.DROPOFF)
    route = client.get("/api/analytics/deliveries/4/route").json()
    assert route["points"] == 5 and route["distance_m"] > 1000 and route["average_speed_mps"] > 0
    progress = client.get("/api/restaurant/deliveries/4/progress").json()
    assert progress["status"] == "arrived" and progress["arrived_at"] == "2026-03-01T12:00:04Z"
    assert [r["sequence"] for r in client.get("/api/history/fjord/readings?limit=1").json()] == [2]
    assert client.get("/api/maps/regions").json()[0]["temperature_c"] == 6.0
    assert client.get("/api/forecasts/fjord").json()["after_sequence"] == 2
    for path in (
        "/api/tracking/deliveries/5/position",
        "/api/analytics/deliveries/5/route",
        "/api/restaurant/deliveries/5/progress",
        "/api/forecasts/nowhere",
    ):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["detail"]
    assert client.get("/api/history/fjord/readings?limit=0").status_code == 422
