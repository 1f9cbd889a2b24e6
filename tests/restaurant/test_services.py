import random
from datetime import UTC, datetime

import pytest

from restaurant.models import DeliveryProgress, Transition
from restaurant.services import progress_update
from tests import streams

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 12, tzinfo=UTC)
FIELDS = ["picked_up_sequence", "picked_up_at", "nearby_sequence", "nearby_at", "arrived_sequence", "arrived_at"]


def feed(positions: list, delivery_id: str) -> list[str]:
    reached = []
    for p in positions:
        reached += progress_update(
            delivery_id=delivery_id,
            sequence=p.sequence,
            lat=p.lat,
            lon=p.lon,
            recorded_at=p.time,
            pickup=streams.PICKUP,
            dropoff=streams.DROPOFF,
        )
    return reached


def state(delivery_id: str) -> list:
    progress = DeliveryProgress.objects.get(delivery_id=delivery_id)
    return [getattr(progress, f) for f in FIELDS]


@pytest.mark.parametrize("seed", range(5))
def test_progress_out_of_order_equals_in_order_and_each_transition_happens_once(seed: int) -> None:
    positions = streams.route(start=START, count=80, seed=seed)
    assert sorted(feed(positions, "a")) == ["arrived", "nearby", "picked_up"]
    shuffled = positions[:]
    random.Random(seed).shuffle(shuffled)
    assert sorted(feed(shuffled, "b")) == ["arrived", "nearby", "picked_up"]
    assert state("a") == state("b")
    a = DeliveryProgress.objects.get(delivery_id="a")
    assert a.status == "arrived"
    assert a.picked_up_sequence < a.nearby_sequence < a.arrived_sequence
    assert Transition.objects.filter(delivery_id="b").count() == 3
    feed(positions, "b")  # everything again: no transition twice
    assert Transition.objects.filter(delivery_id="b").count() == 3 and state("b") == state("a")


def test_radius_is_configured(settings: object) -> None:
    settings.RESTAURANT_NEARBY_RADIUS_M = 5_000  # the pickup itself is near the drop-off now
    positions = streams.route(start=START, count=30)
    feed(positions, "c")
    assert DeliveryProgress.objects.get(delivery_id="c").nearby_sequence == 1


def test_late_updates_are_counted_not_acted_on() -> None:
    arrived = streams.route(start=START, count=10)[-1]
    assert (
        progress_update(
            delivery_id="d",
            sequence=arrived.sequence,
            lat=arrived.lat,
            lon=arrived.lon,
            recorded_at=arrived.time,
            pickup=streams.PICKUP,
            dropoff=streams.DROPOFF,
            late=True,
        )
        == []
    )
    progress = DeliveryProgress.objects.get(delivery_id="d")
    assert progress.late_skipped == 1 and progress.arrived_sequence is None and progress.status == "on the way to pick up"


@pytest.mark.parametrize("seed", range(4))
def test_lists_of_updates_reach_the_milestones_of_one_at_a_time(seed: int) -> None:
    from restaurant.services import ProgressUpdate, progress_updates

    rng = random.Random(seed)
    positions = streams.route(start=START, count=80, seed=seed)
    expected = feed(positions, "one")
    updates = [ProgressUpdate("many", p.sequence, p.lat, p.lon, p.time, streams.PICKUP, streams.DROPOFF) for p in positions]
    updates += rng.sample(updates, 10)
    rng.shuffle(updates)
    reached: list[str] = []
    while updates:
        size = rng.randint(1, 30)
        reached += [m for new in progress_updates(updates[:size]) for m in new]
        updates = updates[size:]
    assert sorted(reached) == sorted(expected)
    assert state("many") == state("one")
    assert Transition.objects.filter(delivery_id="many").count() == 3
