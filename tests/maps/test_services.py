import random
from datetime import UTC, datetime, timedelta

import pytest

from maps.models import RegionWeather
from maps.services import region_weather_update

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("seed", range(3))
def test_the_map_shows_the_newest_reading_whatever_the_arrival_order(seed: int) -> None:
    series = [(i, START + i * timedelta(minutes=1), 10 + i / 10) for i in range(1, 31)]
    shuffled = series[:]
    random.Random(seed).shuffle(shuffled)
    shown = [
        region_weather_update(region="x", sequence=s, temperature_c=t, rain_mm_per_hour=0, observed_at=at)
        for s, at, t in shuffled
    ]
    latest = RegionWeather.objects.get(region="x")
    assert (latest.sequence, latest.temperature_c, latest.observed_at) == (30, 13.0, series[-1][1])
    assert latest.older_ignored == shown.count(False) > 0
    region_weather_update(region="x", sequence=30, temperature_c=13.0, rain_mm_per_hour=0, observed_at=series[-1][1])
    assert RegionWeather.objects.get(region="x").older_ignored == latest.older_ignored  # the same reading again is not older
