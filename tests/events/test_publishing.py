import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

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


def test_publish_writes_one_statement_and_the_row_it_returns(django_assert_num_queries: Any) -> None:
    with transaction.atomic():
        with django_assert_num_queries(1) as captured:  # the INSERT: no savepoint around it
            stored = publish(Ping, {"message": "hi", "priority": 2}, subject="ping-2", sequence=7)
        assert "SAVEPOINT" not in captured.captured_queries[0]["sql"].upper()

    row = StoredEvent.objects.get()
    assert stored.pk == row.pk and not stored._state.adding
    for field in StoredEvent._meta.concrete_fields:
        assert getattr(row, field.attname) == getattr(stored, field.attname), field.name
    assert (row.subject, row.sequence, row.claimed_by, row.rejected_reason) == ("ping-2", 7, "", "")
    assert bytes(row.body) == stored.to_envelope().to_json()


def test_publish_outside_a_transaction_commits_its_row() -> None:
    stored = publish(Ping, {"message": "alone", "priority": 1})

    assert StoredEvent.objects.get().event_id == stored.event_id


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


def test_publish_many_writes_every_event_in_order_in_one_statement(django_assert_max_num_queries: Any) -> None:
    from events.publishing import Publication, publish_many

    with transaction.atomic(), django_assert_max_num_queries(1):  # the INSERT, no savepoint
        stored = publish_many(
            Ping, [Publication({"text": f"n{n}"}, subject="many", sequence=n) for n in range(1, 6)], version="1.0"
        )

    rows = list(StoredEvent.objects.filter(subject="many").order_by("position"))
    assert [row.sequence for row in rows] == [1, 2, 3, 4, 5]
    assert [row.event_id for row in rows] == [s.event_id for s in stored]
    assert all(row.body and json.loads(bytes(row.body))["data"] == row.data for row in rows)
    assert len({row.metadata["traceparent"] for row in rows}) == 5


def test_publish_many_returns_each_row_of_a_call_larger_than_one_statement() -> None:
    from events.publishing import Publication, publish_many

    stored = publish_many(Ping, [Publication({"text": f"n{n}"}, subject="big", sequence=n) for n in range(250)], version="1.0")

    rows = {row.position: row for row in StoredEvent.objects.filter(subject="big")}
    assert len(rows) == 250 and [s.sequence for s in stored] == list(range(250))
    assert [s.position for s in stored] == sorted(rows)  # in the order given
    for sent in stored:
        row = rows[sent.position]
        assert not sent._state.adding
        for field in StoredEvent._meta.concrete_fields:  # every column as given, bytes and JSON included
            assert getattr(row, field.attname) == getattr(sent, field.attname), field.name


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_number_json_cannot_carry_is_refused_before_anything_is_written(number: float) -> None:
    from events.publishing import Publication, publish_many
    from tests.support import Slow

    with pytest.raises(InvalidEventData, match="JSON cannot carry"):
        publish(Slow, {"key": "k", "seconds": number})
    with pytest.raises(InvalidEventData, match="JSON cannot carry"):
        publish_many(Slow, [Publication({"key": "a"}), Publication({"key": "b", "seconds": number})])
    assert not StoredEvent.objects.exists()


def test_publish_many_checks_every_event_before_writing_any() -> None:
    from events.publishing import Publication, publish_many

    with pytest.raises(InvalidEventData):
        publish_many(Ping, [Publication({"text": "fine"}), Publication({"txt": 1})], version="1.0")
    assert not StoredEvent.objects.exists()


def test_publish_many_with_a_sequence_already_in_the_log_writes_nothing() -> None:
    from events.publishing import Publication, publish_many

    publish(Ping, {"text": "first"}, version="1.0", subject="dup", sequence=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        publish_many(
            Ping,
            [Publication({"text": "a"}, subject="dup", sequence=1), Publication({"text": "b"}, subject="dup", sequence=2)],
            version="1.0",
        )
    assert list(StoredEvent.objects.filter(subject="dup").values_list("sequence", flat=True)) == [2]


def test_publish_many_skipping_taken_sequences_writes_the_others_and_returns_them() -> None:
    from events.publishing import Publication, publish_many

    first = publish(Ping, {"text": "first"}, version="1.0", subject="dup", sequence=2)
    publish(Ping, {"text": "other subject"}, version="1.0", subject="else", sequence=3)

    written = publish_many(
        Ping,
        [
            Publication({"text": "a"}, subject="dup", sequence=1),
            Publication({"text": "b"}, subject="dup", sequence=2),  # taken: left out
            Publication({"text": "c"}, subject="dup", sequence=3),  # 3 is taken by another subject only
            Publication({"text": "d"}, subject="dup"),  # no sequence: never taken
        ],
        version="1.0",
        skip_taken=True,
    )

    assert [row.data["text"] for row in written] == ["a", "c", "d"]
    stored = {row.position: row for row in StoredEvent.objects.filter(subject="dup")}
    assert sorted(stored) == sorted([first.position, *(row.position for row in written)])
    assert all(stored[row.position].event_id == row.event_id and not row._state.adding for row in written)
    assert StoredEvent.objects.get(subject="dup", sequence=2).data == {"text": "first"}
    assert publish_many(Ping, [Publication({"text": "b"}, subject="dup", sequence=2)], version="1.0", skip_taken=True) == []


def test_publish_many_skipping_taken_sequences_takes_a_repeated_one_from_its_first_event() -> None:
    from events.publishing import Publication, publish_many

    with transaction.atomic():  # inside a caller's transaction, which goes on
        written = publish_many(
            Ping,
            [Publication({"text": t}, subject="again", sequence=5) for t in ("first", "repeat")]
            + [Publication({"text": "six"}, subject="again", sequence=6)],
            version="1.0",
            skip_taken=True,
        )
        assert [row.data["text"] for row in written] == ["first", "six"]
        publish(Ping, {"text": "after"}, version="1.0", subject="again", sequence=7)
    assert list(StoredEvent.objects.filter(subject="again").order_by("sequence").values_list("data__text", flat=True)) == [
        "first",
        "six",
        "after",
    ]


def test_publish_many_outside_a_transaction_commits_and_on_postgresql_is_one_statement() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from events.publishing import Publication, publish_many

    with CaptureQueriesContext(connection) as captured:
        written = publish_many(
            Ping, [Publication({"text": f"n{n}"}, subject="own", sequence=n) for n in range(3)], version="1.0", skip_taken=True
        )
    assert len(written) == 3
    if connection.vendor == "postgresql":  # a transaction of its own: no BEGIN and COMMIT around it
        assert [q["sql"].split()[0] for q in captured.captured_queries] == ["INSERT"]
    transaction.get_connection().close()  # another session sees the rows: they are committed
    assert StoredEvent.objects.filter(subject="own").count() == 3
