"""Marks written alongside (PostgreSQL): the relay marks a confirmed batch on a connection of its own while the next goes out."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.db import connection, transaction
from django.db import connection as db_connection
from kombu import Connection

from events import publish
from events.models import StoredEvent
from events.relay import ConfirmingPublisher, MarkWriter, Relay
from tests.conftest import RelayThread
from tests.support import Ping, publish_subjects, received_sequences, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("marks are written alongside on PostgreSQL only")


class Watched(Relay):
    """Records, at each confirm, whether a mark writer was there and how many marks had committed."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(wake_address="", batch_size=10, poll_seconds=0.02, **kwargs)
        self.writers: list[bool] = []

    def on_confirmed(self, positions: list[int]) -> None:
        self.writers.append(isinstance(self._marks, MarkWriter))


@pytest.mark.parametrize("single_active", [False, True], ids=["leased", "single-active"])
def test_every_row_is_published_once_in_order_while_marks_are_written_alongside(
    amqp: Connection, purge: None, single_active: bool
) -> None:
    publish_subjects(7, 30)  # 210 rows: 21 batches, each read while the mark of the one before may still be written
    relay = Watched(single_active=single_active)

    with Connection(relay.broker_url) as conn, relay.marks_alongside():
        assert relay.pump(ConfirmingPublisher(conn)) == 210
    # Leaving the block waited for the last mark.
    assert not StoredEvent.objects.filter(published_at__isnull=True).exists()
    assert relay.writers and all(relay.writers)
    seen, total = received_sequences(amqp)
    assert total == 210  # none read again while its mark was being written
    assert dict(seen) == {f"agg-{s}": list(range(1, 31)) for s in range(7)}
    assert relay._in_flight == set()


def test_inside_a_transaction_marks_are_written_in_line(amqp: Connection, purge: None) -> None:
    # A second connection would not see the rows of the caller's transaction.
    relay = Watched()
    with transaction.atomic():
        publish(Ping, {"text": "in a transaction"}, version="1.0")
        with Connection(relay.broker_url) as conn, relay.marks_alongside():
            assert relay.pump(ConfirmingPublisher(conn)) == 1
        assert StoredEvent.objects.get().published_at is not None
    assert relay.writers == [False]


class LosesItsMarkConnection(Watched):
    """Ends the mark writer's database session once, after its first mark: a real connection failure in that thread."""

    test_session = 0
    terminated = 0

    def on_confirmed(self, positions: list[int]) -> None:
        super().on_confirmed(positions)
        if len(self.writers) == 2:
            self._marks.drain()  # the first mark has committed: the writer's session exists
            own = db_connection.connection.info.backend_pid  # the relay's thread: leases and reads
            with db_connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND backend_type = 'client backend' AND pid NOT IN (%s, %s)",
                    [own, self.test_session],
                )
                self.terminated = sum(1 for (done,) in cursor.fetchall() if done)


def test_a_mark_writer_whose_session_ends_writes_on_a_new_one_and_publishes_nothing_twice(
    amqp: Connection, purge: None, caplog: pytest.LogCaptureFixture
) -> None:
    publish_subjects(4, 15)
    relay = LosesItsMarkConnection()
    connection.ensure_connection()
    relay.test_session = connection.connection.info.backend_pid

    with caplog.at_level("INFO", logger="events.relay"), RelayThread(relay):
        wait_for(
            lambda: not StoredEvent.objects.filter(published_at__isnull=True).exists(),
            timeout=30,
            message="every row to be marked",
        )
    assert relay.terminated == 1  # the mark writer's session, and nothing else
    assert any("once more on a new connection" in r.getMessage() for r in caplog.records)
    assert not any("relay interrupted" in r.getMessage() for r in caplog.records)
    seen, total = received_sequences(amqp)
    assert total == 60  # the mark was written on the new session: nothing published again
    assert dict(seen) == {f"agg-{s}": list(range(1, 16)) for s in range(4)}


@pytest.fixture
def marks_refused() -> Iterator[Callable[[], None]]:
    """A real database error on every mark (a trigger), until the test lifts it."""
    table = StoredEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_marks() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'marks refused for this test'; END $$"
        )
        cursor.execute(
            f'CREATE TRIGGER refuse_marks BEFORE UPDATE OF published_at ON "{table}" '
            "FOR EACH ROW WHEN (NEW.published_at IS NOT NULL) EXECUTE FUNCTION refuse_marks()"
        )

    def lift() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TRIGGER IF EXISTS refuse_marks ON "{table}"')
            cursor.execute("DROP FUNCTION IF EXISTS refuse_marks()")

    yield lift
    lift()


def test_a_mark_that_fails_twice_is_an_outage_and_loses_nothing(
    amqp: Connection, purge: None, caplog: pytest.LogCaptureFixture, marks_refused: Callable[[], None]
) -> None:
    publish_subjects(4, 5)
    relay = Watched()

    with caplog.at_level("INFO", logger="events.relay"), RelayThread(relay):
        wait_for(
            lambda: sum("relay interrupted" in r.getMessage() for r in caplog.records) >= 1,
            timeout=30,
            message="the refused mark to interrupt the relay",
        )
        assert StoredEvent.objects.filter(published_at__isnull=True).count() == 20
        marks_refused()  # lifted: the relay, retrying, publishes the rows again and marks them
        wait_for(
            lambda: not StoredEvent.objects.filter(published_at__isnull=True).exists(),
            timeout=30,
            message="every row to be marked once marks are accepted",
        )
    seen, total = received_sequences(amqp)
    assert total >= 40  # published before the refusal, and again after it: at least once
    assert {subject: sorted(set(sequences)) for subject, sequences in seen.items()} == {
        f"agg-{s}": list(range(1, 6)) for s in range(4)
    }
