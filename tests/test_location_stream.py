"""Courier positions through the API → event log (in a scrambled order) → RabbitMQ → tracking, analytics and
restaurant, each from its own queue, on a real worker: the results are those of the positions in order; late
updates are skipped and counted per consumer; events delivered again change nothing."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from analytics.models import DeliveryRoute
from delivery.services import Position
from events.models import StoredEvent
from restaurant.models import DeliveryProgress, Transition
from restaurant.services import milestones_reached
from tests import streams
from tests.conftest import in_process_worker, relay_all
from tests.support import wait_for
from tracking.models import DeliveryPosition

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.broker]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATE = range(20, 25)  # these positions reach the API an hour after they were taken


def expected_progress(positions: list[Position]) -> dict[str, int]:
    first: dict[str, int] = {}
    for p in sorted(positions, key=lambda p: p.sequence):
        for milestone in milestones_reached(lat=p.lat, lon=p.lon, pickup=streams.PICKUP, dropoff=streams.DROPOFF):
            first.setdefault(milestone, p.sequence)
    return first


def post(client: Client, courier_id: int, positions: list[Position]) -> dict[str, Any]:
    response = client.post(
        f"/api/couriers/{courier_id}/locations",
        json.dumps({"positions": [streams.as_json(p) for p in positions]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=streams.basic("rider"),
    )
    assert response.status_code == 202, response.content
    return response.json()


def test_scrambled_late_and_duplicated_updates_give_the_in_order_results(settings: Any, purge: None, client: Client) -> None:
    settings.TRACKING_MAX_AGE_SECONDS = 120
    settings.RESTAURANT_MAX_AGE_SECONDS = 600
    settings.ANALYTICS_MAX_AGE_SECONDS = 24 * 3600
    with time_machine.travel(T0, tick=True):
        courier, delivery = streams.courier_with_delivery()
        d = str(delivery.pk)
        positions = streams.route(start=T0 - timedelta(seconds=40), count=60, every=timedelta(milliseconds=500), seed=3)
        positions = [
            Position(lat=p.lat, lon=p.lon, time=T0 - timedelta(hours=1) + p.sequence * timedelta(seconds=1), sequence=p.sequence)
            if p.sequence in LATE
            else p
            for p in positions
        ]
        scrambled = positions[:]
        random.Random(11).shuffle(scrambled)
        for i in range(0, 60, 7):  # several requests, each a scrambled batch
            post(client, courier.pk, scrambled[i : i + 7])
        logged = list(StoredEvent.objects.filter(subject=f"delivery-{d}").order_by("position").values_list("sequence", flat=True))
        assert logged == [p.sequence for p in scrambled]  # published in the scrambled order

        with in_process_worker(settings, queues=["tracking", "analytics", "restaurant"]):
            assert relay_all() == 60
            position = wait_for(
                lambda: DeliveryPosition.objects.filter(delivery_id=d, sequence=60).first(), timeout=60, message="tracking"
            )
            route = wait_for(
                lambda: DeliveryRoute.objects.filter(delivery_id=d, points=60).first(), timeout=60, message="analytics"
            )
            progress = wait_for(
                lambda: DeliveryProgress.objects.filter(delivery_id=d, arrived_sequence__isnull=False).first(), timeout=60
            )
            wait_for(lambda: DeliveryPosition.objects.get(delivery_id=d).late_skipped == len(LATE), message="tracking late")
            wait_for(lambda: DeliveryProgress.objects.get(delivery_id=d).late_skipped == len(LATE), message="restaurant late")
            # Wait until every one of the 60 events was handled by all three (late ones included).
            from events.models import InboxEntry

            wait_for(lambda: InboxEntry.objects.filter(event_type="LocationUpdated").count() == 180, timeout=60)

            # Tracking: the newest position whatever the arrival order; the older ones arriving after it ignored.
            position.refresh_from_db()
            assert (position.sequence, position.lat, position.lon) == (60, *streams.DROPOFF)
            assert position.late_skipped == len(LATE) and position.older_ignored > 0
            # Analytics: every position (its max age is a day), distance and speed as in order.
            route.refresh_from_db()
            assert route.distance_m == pytest.approx(streams.path_length_m(positions), rel=1e-9)
            assert route.late_skipped == 0 and route.first_sequence == 1 and route.last_sequence == 60
            assert route.average_speed_mps == pytest.approx(route.distance_m / 29.5, rel=1e-9)
            # Restaurant: the milestones of the positions in order, the late ones not acted on; each transition once.
            progress.refresh_from_db()
            fresh = [p for p in positions if p.sequence not in LATE]
            assert {m: getattr(progress, f"{m}_sequence") for m in ("picked_up", "nearby", "arrived")} == expected_progress(fresh)
            assert sorted(Transition.objects.filter(delivery_id=d).values_list("milestone", flat=True)) == [
                "arrived",
                "nearby",
                "picked_up",
            ]

            # Every event delivered again (a relay that crashed before marking them): nothing changes.
            before = (
                list(DeliveryPosition.objects.values()),
                list(DeliveryRoute.objects.values()),
                list(DeliveryProgress.objects.values()),
            )
            StoredEvent.objects.filter(subject=f"delivery-{d}").update(published_at=None)
            assert relay_all() == 60
            sentinel = Position(lat=streams.DROPOFF[0], lon=streams.DROPOFF[1], time=T0 + timedelta(seconds=1), sequence=61)
            post(client, courier.pk, [sentinel])
            assert relay_all() == 1
            wait_for(lambda: InboxEntry.objects.filter(event_type="LocationUpdated").count() == 183, timeout=60)
            wait_for(lambda: DeliveryPosition.objects.get(delivery_id=d).sequence == 61)
            after_position = DeliveryPosition.objects.get(delivery_id=d)
            assert after_position.older_ignored == before[0][0]["older_ignored"]
            assert after_position.late_skipped == len(LATE)
            after_route = DeliveryRoute.objects.get(delivery_id=d)
            assert after_route.points == 61 and after_route.distance_m == pytest.approx(route.distance_m, rel=1e-9)
            assert DeliveryProgress.objects.get(delivery_id=d).late_skipped == len(LATE)
            assert Transition.objects.filter(delivery_id=d).count() == 3
