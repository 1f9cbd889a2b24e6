import random
from datetime import UTC, datetime, timedelta

import pytest

from forecasting.method import holt
from forecasting.models import Forecast, Observation
from forecasting.services import forecast_update
from weather import sensors

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, tzinfo=UTC)


def readings(count: int) -> list[tuple[int, datetime, float]]:
    return [
        (i + 1, START + i * timedelta(seconds=10), sensors.read("coast", 17, START + i * timedelta(seconds=10))[0])
        for i in range(count)
    ]


@pytest.mark.parametrize("seed", range(3))
def test_the_forecast_does_not_depend_on_arrival_order(settings, seed: int) -> None:
    settings.FORECASTING_WINDOW = 20
    series = readings(50)
    for sequence, at, value in series:
        forecast_update(region="a", sequence=sequence, observed_at=at, temperature_c=value)
    shuffled = series[:]
    random.Random(seed).shuffle(shuffled)
    for sequence, at, value in shuffled:
        forecast_update(region="b", sequence=sequence, observed_at=at, temperature_c=value)
    a, b = Forecast.objects.get(region="a"), Forecast.objects.get(region="b")
    expected, errors = holt([v for _, _, v in series[-20:]])
    assert a.predicted_c == b.predicted_c == round(expected, 3)
    assert a.after_sequence == b.after_sequence == 50 and a.observations == b.observations == 20
    assert a.mae_c == b.mae_c == round(sum(map(abs, errors)) / 19, 3)
    assert Observation.objects.filter(region="b").count() == 20  # older readings are not kept


def test_a_duplicate_reading_changes_nothing(settings) -> None:
    for sequence, at, value in readings(5) + readings(5)[2:]:
        forecast = forecast_update(region="a", sequence=sequence, observed_at=at, temperature_c=value)
    assert forecast.observations == 5 and Observation.objects.count() == 5
