from datetime import UTC, datetime

import pytest

from history.models import Reading
from history.services import reading_store

pytestmark = pytest.mark.django_db


def test_every_reading_is_stored_once() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for sequence in (2, 1, 3, 2):
        reading_store(
            region="x",
            sequence=sequence,
            temperature_c=sequence,
            rain_mm_per_hour=0,
            observed_at=at,
            station="s",
            event_id=f"e{sequence}",
        )
    assert list(Reading.objects.order_by("sequence").values_list("sequence", "temperature_c")) == [(1, 1), (2, 2), (3, 3)]
