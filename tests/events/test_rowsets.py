"""events.rowsets writes what the ORM writes (JSON recordset on PostgreSQL, bulk_create/bulk_update elsewhere)."""

import math
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection

from analytics.models import DeliveryRoute
from events import rowsets
from events.models import StoredEvent
from restaurant.models import Transition

pytestmark = pytest.mark.django_db


def _event(n: int, **changes) -> StoredEvent:
    columns = {
        "event_id": uuid.uuid4(),
        "topic": "tests",
        "event_type": "Ping",
        "event_version": "1.0",
        "source": "/tests",
        "subject": f"s-{n}",
        "sequence": n,
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "data": {"text": f"n{n} \u00e9\u4e2d \\ \" '", "nested": {"list": [1, 2.5, None, True]}},
        "metadata": {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
        "body": bytes(range(256)) * 2,
        "header": b"\x00\x01\xff",
        **changes,
    }
    return StoredEvent(**columns)


def test_insert_writes_every_column_as_the_orm_does() -> None:
    mine = [_event(n) for n in range(3)] + [_event(3, body=None, header=None, sequence=None, subject="")]
    theirs = [_event(n + 10) for n in range(3)]
    rowsets.insert(mine)
    StoredEvent.objects.bulk_create(theirs)

    stored = {row.event_id: row for row in StoredEvent.objects.all()}
    for sent in mine:
        row = stored[sent.event_id]
        for field in StoredEvent._meta.concrete_fields:
            if not field.primary_key:
                assert getattr(row, field.attname) == getattr(sent, field.attname), field.name


def test_insert_sets_auto_now_add_times() -> None:
    rowsets.insert([Transition(delivery_id="d", milestone="picked_up", sequence=1)])

    assert Transition.objects.get().created_at is not None


def test_update_writes_the_named_fields_only() -> None:
    routes = [DeliveryRoute.objects.create(delivery_id=str(n)) for n in range(3)]
    for n, route in enumerate(routes):
        route.distance_m, route.last_sequence, route.last_at = 10.5 * n, n or None, datetime(2026, 5, 1, n, tzinfo=UTC)
        route.points = 99  # not named: stays as stored
    rowsets.update(routes, ["distance_m", "last_sequence", "last_at"])

    for n, route in enumerate(DeliveryRoute.objects.order_by("delivery_id")):
        assert (route.distance_m, route.last_sequence, route.last_at) == (
            10.5 * n,
            n or None,
            datetime(2026, 5, 1, n, tzinfo=UTC),
        )
        assert route.points == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the JSON recordset is PostgreSQL's")
def test_a_value_json_cannot_carry_is_refused_before_anything_is_written() -> None:
    route = DeliveryRoute.objects.create(delivery_id="nan")
    route.distance_m = math.nan
    with pytest.raises(ValueError, match="JSON"):
        rowsets.update([route], ["distance_m"])
    assert DeliveryRoute.objects.get().distance_m == 0.0


def test_insert_reads_the_primary_keys_back_in_the_order_of_the_rows() -> None:
    from events.models import InboxEntry

    entries = [InboxEntry(source="/s", event_id=f"e-{n}", handler="h", attempt=n + 1) for n in range(60)]
    rowsets.insert(entries, pks=True)

    stored = InboxEntry.objects.in_bulk([entry.pk for entry in entries])
    assert [stored[entry.pk].event_id for entry in entries] == [f"e-{n}" for n in range(60)]
    assert all(not entry._state.adding and stored[entry.pk].processed_at is not None for entry in entries)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the JSON recordset is PostgreSQL's")
def test_insert_new_leaves_out_rows_already_there_and_returns_the_others_with_their_keys() -> None:
    from events.models import InboxEntry

    InboxEntry.objects.create(source="/s", event_id="e-1", handler="h")
    InboxEntry.objects.create(source="/s", event_id="e-3", handler="other")
    entries = [InboxEntry(source="/s", event_id=f"e-{n}", handler="h", attempt=n + 1) for n in range(5)]

    new = rowsets.insert_new(entries, ["event_id", "source", "handler"])

    assert [entry.event_id for entry in new] == ["e-0", "e-2", "e-3", "e-4"]
    stored = InboxEntry.objects.in_bulk([entry.pk for entry in new])
    assert [(stored[entry.pk].event_id, stored[entry.pk].attempt) for entry in new] == [(e.event_id, e.attempt) for e in new]
    assert entries[1].pk is None and entries[1]._state.adding
    assert InboxEntry.objects.filter(handler="h").count() == 5


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")
def test_an_unsynced_update_on_its_own_writes_and_leaves_nothing_on_the_session() -> None:
    route = DeliveryRoute.objects.create(delivery_id="1")
    route.distance_m = 12.5

    rowsets.update([route], ["distance_m"], unsynced=True)

    assert DeliveryRoute.objects.get().distance_m == 12.5
    assert _synchronous_commit() == "on"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")
def test_an_unsynced_update_inside_a_transaction_does_not_make_the_transaction_unsynced() -> None:
    route = DeliveryRoute.objects.create(delivery_id="1")  # inside the test's transaction
    route.distance_m = 7.0

    rowsets.update([route], ["distance_m"], unsynced=True)

    assert DeliveryRoute.objects.get().distance_m == 7.0
    assert _synchronous_commit() == "on"  # `SET LOCAL` would have held until the end of this transaction
