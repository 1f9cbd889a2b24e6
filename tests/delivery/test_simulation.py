from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from delivery.models import Courier, Delivery
from delivery.tasks import move_simulated_couriers
from events.models import StoredEvent

pytestmark = pytest.mark.django_db


def test_simulated_couriers_ride_their_deliveries_and_start_new_ones(settings) -> None:
    settings.SIMULATION_ENABLED = False
    assert move_simulated_couriers() == 0 and not Courier.objects.exists()
    settings.SIMULATION_ENABLED = True
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as clock:
        assert move_simulated_couriers() == 12  # three couriers, four positions each
        for _ in range(400):
            clock.shift(timedelta(seconds=2))
            move_simulated_couriers()
    events = StoredEvent.objects.filter(event_type="LocationUpdated")
    assert events.count() == 12 * 401
    courier = Courier.objects.order_by("pk").first()
    sequences = list(events.filter(data__courierId=str(courier.pk)).order_by("position").values_list("sequence", flat=True))
    assert sequences == list(range(1, 4 * 401 + 1))  # the courier's sequence runs on across deliveries
    assert Delivery.objects.filter(status="completed").count() >= 3  # a few kilometres at 9 m/s take minutes
    assert Delivery.objects.filter(status="active").count() == 3
