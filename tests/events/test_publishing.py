from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import IntegrityError, transaction

from events import publish, tracing
from events.envelope import Envelope
from events.errors import InvalidEventData, InvalidTimestamp
from events.models import StoredEvent
from tests.support import Ping

pytestmark = pytest.mark.django_db(transaction=True)


def test_publish_appends_to_the_log_in_the_callers_transaction() -> None:
    with transaction.atomic():
        stored = publish(Ping, {"message": "hello", "priority": 1}, subject="ping-1", sequence=1)
        assert StoredEvent.objects.filter(pk=stored.pk).exists()

    row = StoredEvent.objects.get()
    assert (row.topic, row.event_type, row.event_version) == ("tests", "Ping", "2.0")
    assert row.data == {"message": "hello", "priority": 1}
    assert row.published_at is None
    assert row.correlation_id and not row.causation_id
    assert row.metadata["traceparent"].startswith("00-")


def test_a_rolled_back_transaction_publishes_nothing() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(Ping, {"text": "never"}, version="1.0")
        raise RuntimeError("the state change failed")

    assert not StoredEvent.objects.exists()


def test_invalid_data_is_refused_before_anything_is_written() -> None:
    with pytest.raises(InvalidEventData):
        publish(Ping, {"message": "no priority"})

    assert not StoredEvent.objects.exists()


def test_subject_and_sequence_are_unique_for_optimistic_concurrency() -> None:
    publish(Ping, {"text": "a"}, version="1.0", subject="agg-1", sequence=1)

    with pytest.raises(IntegrityError), transaction.atomic():
        publish(Ping, {"text": "b"}, version="1.0", subject="agg-1", sequence=1)


def test_events_published_while_handling_one_carry_its_correlation_and_causation() -> None:
    cause = Envelope(
        event_type="Ping",
        event_version="1.0",
        data={"text": "x"},
        source="s",
        correlation_id="flow-7",
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )

    with tracing.handling(cause):
        effect = publish(Ping, {"text": "y"}, version="1.0")

    assert effect.correlation_id == "flow-7"
    assert effect.causation_id == cause.event_id
    trace = effect.metadata["traceparent"].split("-")
    assert trace[1] == "a" * 32 and trace[2] != "b" * 16


@pytest.mark.parametrize(
    "when",
    [
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(999, 12, 31, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(2025, 7, 7, 14, 5),
    ],
    ids=["before-1970", "year-999", "offset-overflow", "naive"],
)
def test_publish_refuses_a_timestamp_no_envelope_can_carry_and_writes_nothing(when: datetime) -> None:
    with pytest.raises(InvalidTimestamp):
        publish(Ping, {"text": "when?"}, version="1.0", timestamp=when)

    assert not StoredEvent.objects.exists()


def test_publish_keeps_a_given_timestamp_in_utc() -> None:
    stored = publish(
        Ping, {"text": "then"}, version="1.0", timestamp=datetime(2025, 7, 7, 16, 5, tzinfo=timezone(timedelta(hours=2)))
    )

    assert StoredEvent.objects.get(pk=stored.pk).timestamp == datetime(2025, 7, 7, 14, 5, tzinfo=UTC)
