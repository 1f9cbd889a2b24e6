import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, transaction
from kombu import Connection

from events import publish, topology
from events.models import StoredEvent
from events.relay import Relay
from tests import broker
from tests.conftest import RelayThread, basic_get, relay_all
from tests.support import Ping, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _drain(conn: Connection, queue: str) -> list:
    messages = []
    while (message := basic_get(conn, queue)) is not None:
        messages.append(message)
    return messages


def test_relay_publishes_in_log_order_with_the_envelope_and_marks_rows(amqp: Connection, purge: None) -> None:
    with transaction.atomic():
        for n in range(1, 31):
            publish(Ping, {"text": f"n{n}"}, version="1.0", subject="ping-order", sequence=n)

    assert relay_all() == 30

    messages = _drain(amqp, "testsvc.events")
    bodies = [json.loads(m.body) for m in messages]
    assert [b["sequence"] for b in bodies] == list(range(1, 31))
    first = messages[0]
    assert first.properties["delivery_mode"] == 2
    assert first.properties["message_id"] == bodies[0]["eventId"]
    assert first.properties["type"] == "Ping"
    assert first.headers["ce-type"] == "Ping" and first.headers["eventVersion"] == "1.0"
    assert first.delivery_info["routing_key"] == "tests.Ping"
    assert not StoredEvent.objects.filter(published_at__isnull=True).exists()


def test_an_oversized_event_is_kept_and_marked_not_lost(amqp: Connection, purge: None) -> None:
    big = publish(Ping, {"text": "x" * 5000}, version="1.0")
    small = publish(Ping, {"text": "ok"}, version="1.0")

    relay_all(Relay(wake_address="", max_message_bytes=2000))

    big.refresh_from_db()
    small.refresh_from_db()
    assert big.published_at is None and "exceeds EVENTS_MAX_MESSAGE_BYTES=2000" in big.rejected_reason
    assert small.published_at is not None
    assert [json.loads(m.body)["data"]["text"] for m in _drain(amqp, "testsvc.events")] == ["ok"]


class CrashAfterConfirm(Relay):
    def on_confirmed(self, positions: list[int]) -> None:
        raise SystemExit("relay killed between confirm and mark")


def test_a_relay_killed_between_confirm_and_mark_publishes_again(amqp: Connection, purge: None) -> None:
    publish(Ping, {"text": "twice"}, version="1.0")

    with pytest.raises(SystemExit):
        relay_all(CrashAfterConfirm(wake_address="", lease_seconds=2))
    assert StoredEvent.objects.get().published_at is None
    assert relay_all() == 0  # still leased to the dead relay

    wait_for(lambda: relay_all() == 1, timeout=10, message="the lease to run out and another relay to take over")

    ids = [json.loads(m.body)["eventId"] for m in _drain(amqp, "testsvc.events")]
    assert len(ids) == 2 and ids[0] == ids[1]  # at least once: the consumer deduplicates


def test_relay_survives_the_broker_dropping_its_connection(amqp: Connection, purge: None, broker_url: str) -> None:
    with RelayThread(Relay(wake_address="", poll_seconds=0.05)):
        publish(Ping, {"text": "before"}, version="1.0")
        wait_for(lambda: StoredEvent.objects.filter(published_at__isnull=False).count() == 1)

        # The management API lists a new connection after its statistics interval.
        wait_for(lambda: broker.close_connections(broker.vhost_of(broker_url), "relay@"), timeout=15)
        publish(Ping, {"text": "after"}, version="1.0")

        wait_for(lambda: StoredEvent.objects.filter(published_at__isnull=False).count() == 2, timeout=30)
    with Connection(broker_url) as conn:
        texts = sorted(json.loads(m.body)["data"]["text"] for m in _drain(conn, "testsvc.events"))
    assert texts == ["after", "before"]


def test_relay_waits_out_a_broker_that_refuses_connections(
    purge: None, broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A broker that is down when the relay (re)connects is an outage to wait out, not a reason to exit."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    relay = Relay(wake_address="", poll_seconds=0.05, broker_url=f"amqp://guest:guest@127.0.0.1:{closed_port}//")
    running = RelayThread(relay)
    with running:
        interrupted = lambda: sum("relay interrupted" in r.getMessage() for r in caplog.records) >= 2  # noqa: E731
        wait_for(lambda: interrupted() or not running.thread.is_alive(), timeout=60, message="two reconnection attempts")
        assert running.thread.is_alive(), "the relay exited instead of waiting for the broker"
    publish(Ping, {"text": "later"}, version="1.0")
    assert relay_all(broker_url=broker_url) == 1


def test_an_unroutable_event_lands_in_events_unrouted(amqp: Connection, purge: None) -> None:
    from tests.conftest import raw_publish

    raw_publish(amqp, b'{"nobody": "listens"}', "nobody.Listens")

    message = wait_for(lambda: basic_get(amqp, topology.UNROUTED), timeout=5)
    assert message.body == b'{"nobody": "listens"}'
    assert message.delivery_info["routing_key"] == "nobody.Listens"


@pytest.mark.parametrize(
    "when",
    [datetime(1969, 7, 20, 20, 17, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)],
    ids=["1969", "1900", "year-1"],
)
def test_a_row_the_relay_cannot_encode_is_set_aside_and_the_log_flows_on(amqp: Connection, purge: None, when: datetime) -> None:
    # Rows written around publish() (raw SQL, an old version, a restored backup) can still hold anything.
    odd = publish(Ping, {"text": "odd"}, version="1.0")
    StoredEvent.objects.filter(pk=odd.pk).update(timestamp=when, body=None, header=None)
    with transaction.atomic():
        for n in range(60):
            publish(Ping, {"text": f"healthy {n}"}, version="1.0")

    with RelayThread(Relay(wake_address="", poll_seconds=0.05, batch_size=25)) as relay:
        wait_for(lambda: StoredEvent.objects.filter(published_at__isnull=False).count() == 60, timeout=30)
        assert relay.stop_event.is_set() is False

    odd.refresh_from_db()
    assert odd.published_at is None
    assert "cannot be made into a message" in odd.rejected_reason and "before 1970" in odd.rejected_reason
    texts = [json.loads(m.body)["data"]["text"] for m in _drain(amqp, "testsvc.events")]
    assert texts == [f"healthy {n}" for n in range(60)]


def test_a_message_py_amqp_cannot_encode_is_set_aside_by_the_publisher(amqp: Connection, purge: None) -> None:
    from events.relay import ConfirmingPublisher, Outgoing

    publisher = ConfirmingPublisher(amqp)
    good = Outgoing(2, "tests.Ping", b"{}", {"content_type": "application/json", "delivery_mode": 2})
    bad = Outgoing(1, "tests.Ping", b"{}", {"content_type": "application/json", "timestamp": -1})

    unsendable = publisher.send([bad, good])

    assert list(unsendable) == [1] and "cannot be encoded as an AMQP message" in unsendable[1]
    acked, nacked = publisher.wait(0, timeout=10)
    assert (acked, nacked) == ([2], [])


def test_the_body_stored_by_publish_is_what_the_relay_sends(amqp: Connection, purge: None) -> None:
    from events.frames import encode_properties

    stored = publish(Ping, {"text": "once"}, version="1.0", subject="ping-body", sequence=1)
    stored.refresh_from_db()
    assert bytes(stored.body) == stored.to_envelope().to_json()
    assert bytes(stored.header) == encode_properties(stored.to_envelope().amqp_properties())

    relay_all()

    [message] = _drain(amqp, "testsvc.events")
    assert message.body.encode() == bytes(stored.body)  # py-amqp decodes a body with a content encoding
    assert message.headers["ce-id"] == str(stored.event_id) and message.headers["ce-subject"] == "ping-body"


def test_a_row_written_without_a_stored_body_is_encoded_by_the_relay(amqp: Connection, purge: None) -> None:
    # Rows written before the body column existed, or by raw SQL around publish().
    old = publish(Ping, {"text": "old"}, version="1.0")
    StoredEvent.objects.filter(pk=old.pk).update(body=None)

    relay_all()

    [message] = _drain(amqp, "testsvc.events")
    old.refresh_from_db()
    assert message.body.encode() == old.to_envelope().to_json()
    assert old.published_at is not None


def test_a_transaction_that_commits_late_is_not_skipped(amqp: Connection, purge: None) -> None:
    # A writer takes position 1 but commits after positions 2 and 3 were relayed.
    later = [publish(Ping, {"text": f"later {n}"}, version="1.0") for n in range(2)]
    relay_all()
    assert len(_drain(amqp, "testsvc.events")) == 2
    first = min(row.position for row in later) - 1
    assert first > 0 and not StoredEvent.objects.filter(position=first).exists()
    late = publish(Ping, {"text": "late"}, version="1.0")
    StoredEvent.objects.filter(pk=late.pk).update(position=first)

    assert relay_all() == 1

    assert [json.loads(m.body)["data"]["text"] for m in _drain(amqp, "testsvc.events")] == ["late"]
    assert StoredEvent.objects.get(position=first).published_at is not None


def test_rows_of_a_subject_another_relay_holds_earlier_are_given_back(amqp: Connection, purge: None) -> None:
    with transaction.atomic():
        held = publish(Ping, {"text": "held a1"}, version="1.0", subject="agg-a", sequence=1)
        publish(Ping, {"text": "a2"}, version="1.0", subject="agg-a", sequence=2)
        publish(Ping, {"text": "b1"}, version="1.0", subject="agg-b", sequence=1)
    # Another relay has the first event of agg-a in flight.
    StoredEvent.objects.filter(pk=held.pk).update(claimed_by="other", claimed_until=datetime(2999, 1, 1, tzinfo=UTC))

    assert relay_all() == 1

    assert [json.loads(m.body)["data"]["text"] for m in _drain(amqp, "testsvc.events")] == ["b1"]
    a2 = StoredEvent.objects.get(subject="agg-a", sequence=2)
    assert a2.published_at is None and a2.claimed_by == "" and a2.claimed_until is None  # free for the other relay


def test_a_relay_that_cannot_reach_the_broker_waits_it_out(caplog: pytest.LogCaptureFixture) -> None:
    relay = Relay(broker_url="amqp://guest:guest@127.0.0.1:1//", wake_address="", poll_seconds=0.05)
    running = RelayThread(relay)
    with caplog.at_level("WARNING", logger="events.relay"), running:
        wait_for(lambda: sum("relay interrupted" in r.getMessage() for r in caplog.records) >= 2, timeout=10)
        assert running.thread.is_alive()  # retrying with backoff, not gone


@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")
def test_the_relay_leaves_no_setting_behind_on_its_database_session(amqp: Connection, purge: None) -> None:
    # Leases and marks commit without waiting for the disk; a session shared through a pooler must not keep that.
    with transaction.atomic():
        for n in range(3):
            publish(Ping, {"text": f"s{n}"}, version="1.0")

    assert relay_all() == 3

    assert not StoredEvent.objects.filter(published_at__isnull=True).exists()
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_the_lease_asks_for_earlier_rows_held_elsewhere_leaving_out_its_own(purge: None) -> None:
    """The one-statement lease of PostgreSQL (and the lease then `others_before` elsewhere) tell the same: rows of
    this claim and rows this relay leased before are its own; an earlier row another relay holds is not."""
    from datetime import timedelta

    from events.relay import LogStatements

    sql = LogStatements.of(connection)

    def lease(relay_id: str, limit: int) -> tuple[list[int], bool]:
        now = datetime.now(UTC)
        with sql.together(), connection.cursor() as cursor:
            rows, held = sql.lease_checked(cursor, relay_id, now, now + timedelta(seconds=60), limit)
            if held is None:  # not asked by the lease (SQLite): asked as the relay asks it
                held = bool(rows) and sql.others_before(cursor, rows[-1].position, relay_id, now)
        return [row.position for row in rows], held

    positions = [publish(Ping, {"text": f"p{i}"}, version="1.0", subject=f"s{i}").position for i in range(6)]

    assert lease("me", 2) == (positions[0:2], False)  # a claim of its own rows only
    assert lease("me", 2) == (positions[2:4], False)  # the rows leased before are this relay's too
    StoredEvent.objects.filter(position__in=positions[0:4]).update(published_at=datetime.now(UTC), claimed_until=None)
    assert lease("other", 1) == (positions[4:5], False)
    assert lease("me", 1) == (positions[5:6], True)  # the other relay holds an earlier row
    assert lease("me", 1) == ([], False)


class Lingering(Relay):
    """Counts its lingers instead of sleeping them."""

    lingered = 0

    def _linger(self) -> None:
        self.lingered += 1


def test_the_relay_lingers_only_when_the_commits_during_its_last_batch_make_more_due() -> None:
    relay = Relay(wake_address="", linger_seconds=0.005)
    assert relay._flowing(nudges=2, seconds=0.004)  # 500/s: more than one due in 5 ms
    assert relay._flowing(nudges=10, seconds=0.040)
    assert not relay._flowing(nudges=2, seconds=0.020)  # 100/s: the next is due after the linger
    assert not relay._flowing(nudges=1, seconds=0.001)  # one commit says nothing of a rate
    assert not relay._flowing(nudges=0, seconds=0.001)
    assert not Relay(wake_address="", linger_seconds=0.0)._flowing(nudges=50, seconds=0.001)


def test_the_relay_takes_waiting_nudges_at_once_and_lingers_for_a_flow_of_them(purge: None, settings: Any) -> None:
    # A linger of a minute: any commits within one batch are a flow (and `Lingering` does not sleep it).
    relay = Lingering(wake_address="127.0.0.1:0", poll_seconds=0.0, linger_seconds=60.0)
    wake = relay._bind_wake_socket()
    assert wake is not None
    try:
        settings.EVENTS_RELAY_WAKE_ADDRESS = f"127.0.0.1:{wake.getsockname()[1]}"  # where publish() nudges
        relay._wait(wake)  # a quiet bus: no nudge waiting, the relay waits for one (here: its poll of 0 s)
        assert relay.lingered == 0
        publish(Ping, {"text": "alone"}, version="1.0")  # one commit while a batch was out: no lingering
        relay._wait(wake)
        assert relay.lingered == 0
        publish(Ping, {"text": "a"}, version="1.0")  # several: events are flowing
        publish(Ping, {"text": "b"}, version="1.0")
        publish(Ping, {"text": "c"}, version="1.0")
        relay._wait(wake)
        assert relay.lingered == 1
        assert Relay._nudges(wake, 0.0) == 0, "every waiting nudge was taken at once"
    finally:
        wake.close()
