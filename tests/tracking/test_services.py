import random
from datetime import UTC, datetime

import pytest

from tests import streams
from tracking.models import DeliveryPosition
from tracking.services import position_update

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 12, tzinfo=UTC)


def feed(positions: list, delivery_id: str = "7") -> list[str]:
    return [
        position_update(delivery_id=delivery_id, courier_id="3", sequence=p.sequence, lat=p.lat, lon=p.lon, recorded_at=p.time)
        for p in positions
    ]


@pytest.mark.parametrize("seed", range(5))
def test_shuffled_updates_leave_the_newest_position_and_count_the_older_ones(seed: int) -> None:
    positions = streams.route(start=START, count=40)
    shuffled = positions[:]
    random.Random(seed).shuffle(shuffled)
    outcomes = feed(shuffled)
    held = DeliveryPosition.objects.get(delivery_id="7")
    newest = positions[-1]
    assert (held.sequence, held.lat, held.lon, held.recorded_at) == (newest.sequence, newest.lat, newest.lon, newest.time)
    # An update is ignored exactly when a higher sequence arrived before it.
    expected_older = sum(1 for i, p in enumerate(shuffled) if any(q.sequence > p.sequence for q in shuffled[:i]))
    assert held.older_ignored == expected_older == outcomes.count("older")
    assert held.late_skipped == 0


def test_in_order_updates_ignore_nothing_and_duplicates_change_nothing() -> None:
    positions = streams.route(start=START, count=10)
    feed(positions)
    feed(positions[-3:])  # the same updates again (the same sequences)
    held = DeliveryPosition.objects.get(delivery_id="7")
    assert held.sequence == positions[-1].sequence
    assert held.older_ignored == 2  # 8 and 9 are older than 10; 10 itself is the same, not older


def test_late_updates_are_counted_and_never_applied() -> None:
    [p] = streams.route(start=START, count=2)[:1]
    assert position_update(delivery_id="8", courier_id="3", sequence=99, lat=1, lon=1, recorded_at=START, late=True) == "late"
    assert (
        position_update(delivery_id="8", courier_id="3", sequence=p.sequence, lat=p.lat, lon=p.lon, recorded_at=p.time)
        == "updated"
    )
    held = DeliveryPosition.objects.get(delivery_id="8")
    assert (held.sequence, held.late_skipped, held.older_ignored) == (p.sequence, 1, 0)


@pytest.mark.parametrize("seed", range(4))
def test_lists_of_updates_have_the_outcomes_of_one_at_a_time(seed: int) -> None:
    from tracking.services import PositionUpdate, positions_update

    rng = random.Random(seed)
    updates = [
        PositionUpdate(d, "3", p.sequence, p.lat, p.lon, p.time, late=rng.random() < 0.1)
        for d in ("a", "b")
        for p in streams.route(start=START, count=30, seed=seed)
    ]
    updates += rng.sample(updates, 10)
    rng.shuffle(updates)
    one_at_a_time = [
        position_update(
            delivery_id=f"1{u.delivery_id}",
            courier_id=u.courier_id,
            sequence=u.sequence,
            lat=u.lat,
            lon=u.lon,
            recorded_at=u.recorded_at,
            late=u.late,
        )
        for u in updates
    ]
    in_lists: list[str] = []
    rest = updates
    while rest:
        size = rng.randint(1, 20)
        in_lists += positions_update(rest[:size])
        rest = rest[size:]
    assert in_lists == one_at_a_time
    for d in ("a", "b"):
        fields = ("sequence", "lat", "lon", "recorded_at", "older_ignored", "late_skipped")
        assert DeliveryPosition.objects.filter(delivery_id=d).values(*fields).get() == (
            DeliveryPosition.objects.filter(delivery_id=f"1{d}").values(*fields).get()
        )
