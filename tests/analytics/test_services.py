import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.models import DeliveryRoute
from analytics.services import route_point_add
from tests import streams

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, 12, tzinfo=UTC)


def feed(positions: list, delivery_id: str = "7") -> DeliveryRoute:
    route = None
    for p in positions:
        route = route_point_add(delivery_id=delivery_id, sequence=p.sequence, lat=p.lat, lon=p.lon, recorded_at=p.time)
    return route


@pytest.mark.parametrize("seed", range(6))
def test_distance_and_speed_out_of_order_equal_in_order(seed: int) -> None:
    positions = streams.route(start=START, count=60, seed=seed, every=timedelta(seconds=2))
    in_order = feed(positions, "in-order")
    shuffled = positions[:]
    random.Random(seed).shuffle(shuffled)
    out_of_order = feed(shuffled, "shuffled")
    expected = streams.path_length_m(positions)
    assert in_order.distance_m == pytest.approx(expected, rel=1e-9)
    assert out_of_order.distance_m == pytest.approx(expected, rel=1e-9)
    assert out_of_order.points == in_order.points == 60
    assert out_of_order.average_speed_mps == pytest.approx(expected / 118, rel=1e-9)
    assert (out_of_order.first_sequence, out_of_order.last_sequence) == (1, 60)


def test_duplicates_and_late_updates_change_no_figure() -> None:
    positions = streams.route(start=START, count=20)
    feed(positions)
    route = feed(random.Random(1).sample(positions, 8))
    assert route.points == 20 and route.distance_m == pytest.approx(streams.path_length_m(positions), rel=1e-9)
    late = route_point_add(delivery_id="7", sequence=500, lat=0, lon=0, recorded_at=START, late=True)
    assert late.late_skipped == 1 and late.points == 20 and late.last_sequence == 20


def test_one_point_has_no_speed() -> None:
    route = feed(streams.route(start=START, count=2)[:1])
    assert route.distance_m == 0 and route.average_speed_mps is None


@pytest.mark.parametrize("seed", range(4))
def test_shuffled_positions_in_lists_of_several_deliveries_give_the_figures_of_one_at_a_time(seed: int) -> None:
    from analytics.services import RoutePosition, route_points_add

    rng = random.Random(seed)
    routes = {d: streams.route(start=START, count=40, seed=seed + n) for n, d in enumerate(("a", "b", "c"))}
    mixed = [RoutePosition(d, p.sequence, p.lat, p.lon, p.time) for d, ps in routes.items() for p in ps]
    mixed += rng.sample(mixed, 15)  # duplicates, some in the same list
    mixed.append(RoutePosition("a", 999, 0, 0, START, late=True))
    rng.shuffle(mixed)
    while mixed:
        size = rng.randint(1, 25)
        route_points_add(mixed[:size])
        mixed = mixed[size:]
    for delivery_id, positions in routes.items():
        route = DeliveryRoute.objects.get(delivery_id=delivery_id)
        assert route.distance_m == pytest.approx(streams.path_length_m(positions), rel=1e-9)
        assert (route.points, route.first_sequence, route.last_sequence) == (40, 1, 40)
        assert route.late_skipped == (1 if delivery_id == "a" else 0)


def test_positions_after_the_last_point_read_no_points() -> None:
    from analytics.models import RoutePoint
    from analytics.services import RoutePosition, route_points_add

    positions = streams.route(start=START, count=30)
    batches = [positions[:10], positions[10:20], positions[20:]]
    for batch in batches:
        with CaptureQueriesContext(connection) as captured:
            route_points_add([RoutePosition("in-order", p.sequence, p.lat, p.lon, p.time) for p in batch])
        statements = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
        # Lock (and, the first time, create) the route, insert the points, write the route: no read of route points.
        assert len(statements) <= 4, statements
        assert not [sql for sql in statements if sql.startswith("SELECT") and "analytics_routepoint" in sql]
    route = DeliveryRoute.objects.get(delivery_id="in-order")
    assert route.distance_m == pytest.approx(streams.path_length_m(positions), rel=1e-9)
    assert (route.points, route.last_lat, route.last_lon) == (30, positions[-1].lat, positions[-1].lon)
    assert RoutePoint.objects.filter(delivery_id="in-order").count() == 30


def test_a_route_without_its_last_point_on_the_row_reads_the_points() -> None:
    positions = streams.route(start=START, count=20)
    feed(positions[:10], "older")
    DeliveryRoute.objects.filter(delivery_id="older").update(last_lat=None, last_lon=None)  # a row of before the columns

    route = feed(positions[10:], "older")

    assert route.distance_m == pytest.approx(streams.path_length_m(positions), rel=1e-9)
    assert (route.last_lat, route.last_lon) == (positions[-1].lat, positions[-1].lon)
