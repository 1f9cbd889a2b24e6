"""POST /api/couriers/{id}/locations: authentication, validation with clear 4xx JSON, what it publishes."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from delivery.models import Delivery
from delivery.services import delivery_complete
from events.models import StoredEvent
from tests import streams

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():  # noqa: ANN201
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def post(client: Client, courier_id: int, body: object, auth: str | None) -> object:
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.post(f"/api/couriers/{courier_id}/locations", json.dumps(body), content_type="application/json", **headers)


def events() -> list[StoredEvent]:
    return list(StoredEvent.objects.filter(event_type="LocationUpdated").order_by("position"))


def test_one_position_publishes_one_location_updated(client: Client) -> None:
    courier, delivery = streams.courier_with_delivery()
    at = NOW - timedelta(seconds=3)
    response = post(
        client, courier.pk, {"lat": 52.52, "lon": 13.405, "time": at.isoformat(), "sequence": 41}, streams.basic("rider")
    )
    assert response.status_code == 202, response.content
    assert response.json() == {"delivery": delivery.pk, "accepted": 1, "duplicates": 0}
    [event] = events()
    assert event.topic == "delivery" and event.subject == f"delivery-{delivery.pk}" and event.sequence == 41
    assert event.timestamp == at
    assert event.data["deliveryId"] == str(delivery.pk) and event.data["courierId"] == str(courier.pk)
    assert (event.data["lat"], event.data["lon"]) == (52.52, 13.405)
    assert event.data["pickup"] == {"lat": streams.PICKUP[0], "lon": streams.PICKUP[1]}
    assert event.data["dropoff"] == {"lat": streams.DROPOFF[0], "lon": streams.DROPOFF[1]}


def test_a_batch_publishes_one_event_per_position_and_duplicates_change_nothing(client: Client) -> None:
    courier, delivery = streams.courier_with_delivery()
    positions = streams.route(start=NOW - timedelta(seconds=60), count=25, first_sequence=100)
    body = {"positions": [streams.as_json(p) for p in positions]}
    assert post(client, courier.pk, body, streams.basic("rider")).json() == {
        "delivery": delivery.pk,
        "accepted": 25,
        "duplicates": 0,
    }
    assert sorted(e.sequence for e in events()) == list(range(100, 125))
    # The app sends part of it again (it lost the answer), with two new ones.
    again = {
        "positions": [streams.as_json(p) for p in positions[20:]]
        + [streams.as_json(p) for p in streams.route(start=NOW - timedelta(seconds=5), count=2, first_sequence=125)]
    }
    assert post(client, courier.pk, again, streams.basic("rider")).json() == {
        "delivery": delivery.pk,
        "accepted": 2,
        "duplicates": 5,
    }
    assert len(events()) == 27


def test_staff_may_post_for_any_courier_others_get_403(client: Client) -> None:
    courier, _ = streams.courier_with_delivery()
    streams.user("other")
    streams.user("dispatcher", staff=True)
    body = {"lat": 1, "lon": 2, "time": NOW.isoformat(), "sequence": 1}
    response = post(client, courier.pk, body, streams.basic("other"))
    assert response.status_code == 403 and "may not report positions" in response.json()["detail"]
    assert post(client, courier.pk, body, streams.basic("dispatcher")).status_code == 202


@pytest.mark.parametrize(
    "auth",
    [None, "Basic " + "bm9ib2R5Om5vcGU=", "Bearer abc", "Basic %%%", "Basic " + base64.b64encode(b"ri\x00der:pw").decode()],
)
def test_without_valid_credentials_401_json(client: Client, auth: str | None) -> None:
    courier, _ = streams.courier_with_delivery()
    response = post(client, courier.pk, {"lat": 1, "lon": 2, "time": NOW.isoformat(), "sequence": 1}, auth)
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json") and response.json()["detail"]
    assert events() == []


def test_wrong_password_is_refused_even_after_a_right_one(client: Client) -> None:
    courier, _ = streams.courier_with_delivery()
    body = {"lat": 1, "lon": 2, "time": NOW.isoformat(), "sequence": 1}
    assert post(client, courier.pk, body, streams.basic("rider")).status_code == 202
    assert post(client, courier.pk, body, streams.basic("rider", "wrong")).status_code == 401


def test_unknown_courier_404_and_no_active_delivery_409(client: Client) -> None:
    courier, delivery = streams.courier_with_delivery()
    streams.user("boss", staff=True)
    body = {"lat": 1, "lon": 2, "time": NOW.isoformat(), "sequence": 1}
    response = post(client, 999999, body, streams.basic("boss"))
    assert response.status_code == 404 and response.json() == {"detail": "no courier 999999"}
    delivery_complete(delivery=delivery)
    response = post(client, courier.pk, body, streams.basic("rider"))
    assert response.status_code == 409 and "no active delivery" in response.json()["detail"]
    assert Delivery.objects.get().status == "completed" and events() == []


@pytest.mark.parametrize(
    ("body", "loc", "says"),
    [
        ({"lat": 90.5, "lon": 0, "sequence": 1}, "lat", "less than or equal to 90"),
        ({"lat": -91, "lon": 0, "sequence": 1}, "lat", "greater than or equal to -90"),
        ({"lat": 0, "lon": 180.01, "sequence": 1}, "lon", "less than or equal to 180"),
        ({"lat": 0, "lon": -181, "sequence": 1}, "lon", "greater than or equal to -180"),
        ({"lat": 0, "lon": 0, "sequence": -1}, "sequence", "greater than or equal to 0"),
        ({"lat": "north", "lon": 0, "sequence": 1}, "lat", "valid number"),
        ({"lat": 0, "lon": 0}, "sequence", "required"),
        ({"lat": 0, "lon": 0, "sequence": 1, "time": "2026-03-01T12:00:00"}, "time", "timezone"),
        ({"lat": 0, "lon": 0, "sequence": 1, "time": "yesterday"}, "time", "datetime"),
        ({"lat": 0, "lon": 0, "sequence": 1, "time": (NOW + timedelta(seconds=31)).isoformat()}, "time", "in the future"),
        ({"lat": 0, "lon": 0, "sequence": 1, "time": "1969-12-31T23:59:59+00:00"}, "time", "after 1970"),
    ],
)
def test_bad_positions_get_422_saying_what_is_wrong(client: Client, body: dict, loc: str, says: str) -> None:
    courier, _ = streams.courier_with_delivery()
    body = {"time": NOW.isoformat(), **body}
    for sent in (body, {"positions": [{"lat": 1, "lon": 1, "time": NOW.isoformat(), "sequence": 99}, body]}):
        response = post(client, courier.pk, sent, streams.basic("rider"))
        assert response.status_code == 422, response.content
        detail = response.json()["detail"]
        assert any(e["loc"][-1] == loc and says in e["msg"] for e in detail), detail
    assert events() == []  # a batch with one bad position publishes none of it


def test_time_within_the_allowed_skew_is_accepted(client: Client, settings: object) -> None:
    courier, _ = streams.courier_with_delivery()
    at = NOW + timedelta(seconds=29)
    response = post(client, courier.pk, {"lat": 0, "lon": 0, "time": at.isoformat(), "sequence": 1}, streams.basic("rider"))
    assert response.status_code == 202
    settings.DELIVERY_CLOCK_SKEW_SECONDS = 5
    response = post(client, courier.pk, {"lat": 0, "lon": 0, "time": at.isoformat(), "sequence": 2}, streams.basic("rider"))
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"positions": []}, "at least 1"),
        ({"positions": [{"lat": 0, "lon": 0, "time": NOW.isoformat(), "sequence": 5}] * 2}, "sequence 5 appears twice"),
        ([1, 2], "valid dictionary"),
        ({"positions": [{"lat": 0, "lon": 0, "time": NOW.isoformat(), "sequence": i} for i in range(1001)]}, "at most 1000"),
    ],
)
def test_bad_batches_get_422(client: Client, body: object, says: str) -> None:
    courier, _ = streams.courier_with_delivery()
    response = post(client, courier.pk, body, streams.basic("rider"))
    assert response.status_code == 422
    assert says in json.dumps(response.json()), response.json()


def test_a_body_that_is_not_json_is_400_and_a_non_json_content_type_415(client: Client) -> None:
    courier, _ = streams.courier_with_delivery()
    auth = {"HTTP_AUTHORIZATION": streams.basic("rider")}
    url = f"/api/couriers/{courier.pk}/locations"
    assert client.post(url, "{lat", content_type="application/json", **auth).status_code == 400
    assert client.post(url, "lat=1", content_type="application/x-www-form-urlencoded", **auth).status_code == 415


def test_a_changed_password_or_a_deactivated_user_applies_at_once(client: Client) -> None:
    courier, _ = streams.courier_with_delivery()
    body = {"lat": 1, "lon": 2, "time": NOW.isoformat(), "sequence": 1}
    assert post(client, courier.pk, body, streams.basic("rider")).status_code == 202  # now remembered
    rider = courier.user
    rider.set_password("changed")
    rider.save()
    assert post(client, courier.pk, {**body, "sequence": 2}, streams.basic("rider")).status_code == 401
    assert post(client, courier.pk, {**body, "sequence": 3}, streams.basic("rider", "changed")).status_code == 202
    rider.is_active = False
    rider.save()
    assert post(client, courier.pk, {**body, "sequence": 4}, streams.basic("rider", "changed")).status_code == 401


def test_a_request_costs_the_same_few_queries_however_many_positions_it_carries(client: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    courier, _ = streams.courier_with_delivery()
    positions = streams.route(start=NOW - timedelta(seconds=60), count=51, first_sequence=1)
    post(client, courier.pk, {"positions": [streams.as_json(positions[0])]}, streams.basic("rider"))  # credentials checked
    counts = []
    for chunk in (positions[1:2], positions[2:51]):
        with CaptureQueriesContext(connection) as queries:
            response = post(client, courier.pk, {"positions": [streams.as_json(p) for p in chunk]}, streams.basic("rider"))
        assert response.status_code == 202 and response.json()["accepted"] == len(chunk)
        counts.append([q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT"))])
    # The user, the delivery with its courier, the insert (leaving out taken sequences); elsewhere than on PostgreSQL
    # the taken sequences are read first.
    assert len(counts[0]) == len(counts[1]) <= (3 if connection.vendor == "postgresql" else 4), counts
