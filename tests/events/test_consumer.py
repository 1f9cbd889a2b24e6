import json
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.v1.event import CloudEvent
from kombu import Connection, Consumer

from events import Event, publish, subscribe
from events.envelope import Envelope
from events.models import DeadLetter, HandlerSkips, InboxEntry
from notifications.models import Notification
from tests import broker
from tests.conftest import basic_get, in_process_worker, raw_publish, relay_all
from tests.support import Ping, Shipment, Step, read_deliveries, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _good(text: str) -> bytes:
    return Envelope(event_type="Ping", event_version="1.0", data={"text": text}, source="test").to_json()


def _handled(kind: str, body: str) -> bool:
    return Notification.objects.filter(kind=kind, body=body).exists()


def test_each_handler_gets_the_version_it_declared(worker: object) -> None:
    publish(Ping, {"text": "hello"}, version="1.0")
    relay_all()

    wait_for(lambda: _handled("ping-v1", "hello") and _handled("ping-v2", "hello/0"))
    assert Notification.objects.filter(kind__startswith="ping").count() == 2


class Pickled:
    def __reduce__(self) -> tuple:
        return (print, ("pickle payload executed",))


BAD_MESSAGES = [
    ("malformed-json", b'{"eventType": "Ping", ', "application/json", {}, "body is not valid JSON"),
    ("missing-fields", b'{"eventType": "Ping", "data": {}}', "application/json", {}, "missing required fields"),
    ("unknown-type", _good("x").replace(b'"Ping"', b'"Pong"'), "application/json", {}, "unknown event type 'Pong'"),
    ("unknown-version", _good("x").replace(b'"1.0"', b'"9.9"'), "application/json", {}, "Ping has no version '9.9'"),
    ("pickle", pickle.dumps(Pickled()), "application/x-python-serialize", {}, "events are JSON only"),
    ("invalid-data", _good("x").replace(b'{"text": "x"}', b'{"txt": 1}'), "application/json", {}, "data does not match Ping 1.0"),
]


@pytest.mark.parametrize(("name", "body", "content_type", "headers", "reason"), BAD_MESSAGES, ids=[m[0] for m in BAD_MESSAGES])
def test_a_bad_message_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(
    worker: object,
    amqp: Connection,
    capsys: pytest.CaptureFixture[str],
    name: str,
    body: bytes,
    content_type: str,
    headers: dict,
    reason: str,
) -> None:
    raw_publish(amqp, body, "tests.Ping", content_type=content_type, headers=headers)
    raw_publish(amqp, _good(f"after {name}"), "tests.Ping")

    wait_for(lambda: _handled("ping-v1", f"after {name}"), message="the next good event")
    dead = wait_for(lambda: DeadLetter.objects.filter(service="testsvc").first(), message="a dead letter")
    assert reason in dead.reason
    assert dead.stage == DeadLetter.Stage.CONSUMER
    assert dead.content_type == content_type
    assert dead.raw_body  # the message is kept as it came
    in_dlq = wait_for(lambda: basic_get(amqp, "testsvc.events.dlq"), timeout=5, message="the message in the DLQ")
    assert in_dlq.body == body
    assert "pickle payload executed" not in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevents_from_other_producers_are_handled(worker: object, amqp: Connection, mode: str) -> None:
    event = CloudEvent(
        attributes={
            "id": f"ce-{mode}",
            "source": "/go-service",
            "type": "com.example.tests.Ping",
            "datacontenttype": "application/json",
            "eventversion": "2.0",
        },
        data={"message": f"from {mode}", "priority": 5},
    )
    message = (ce_rabbitmq.to_binary_event if mode == "binary" else ce_rabbitmq.to_structured_event)(event)

    raw_publish(amqp, message.body, "tests.Ping", content_type=message.content_type, headers=message.headers)

    wait_for(lambda: _handled("ping-v2", f"from {mode}/5") and _handled("ping-v1", f"from {mode}"))
    assert not DeadLetter.objects.exists()


def test_an_event_with_no_route_to_a_handlers_version_is_a_dead_letter_for_that_handler_only(
    worker: object, amqp: Connection
) -> None:
    publish(Shipment, {"shipmentId": "S1"}, version="1.0")
    publish(Ping, {"text": "still flowing"}, version="1.0")
    relay_all()

    wait_for(lambda: _handled("ping-v1", "still flowing"))
    dead = wait_for(lambda: DeadLetter.objects.filter(event_type="Shipment").first())
    assert dead.handler == "tests.support.shipment_v2_handler"
    assert dead.reason == "no conversion from Shipment 1.0 to 2.0"
    assert dead.envelope["data"] == {"shipmentId": "S1"}
    wait_for(lambda: _handled("shipment-v1", "S1"), message="the handler of the published version still runs")


def test_a_handler_with_a_maximum_age_skips_older_events(worker: object, amqp: Connection) -> None:
    old = Envelope(event_type="Tick", event_version="1.0", data={"n": 1}, source="t", timestamp=datetime(2020, 1, 1, tzinfo=UTC))
    fresh = Envelope(event_type="Tick", event_version="1.0", data={"n": 2}, source="t")

    raw_publish(amqp, old.to_json(), "tests.Tick")
    raw_publish(amqp, fresh.to_json(), "tests.Tick")

    wait_for(lambda: _handled("tick", "2"))
    assert not _handled("tick", "1")
    assert not DeadLetter.objects.exists()
    skips = wait_for(lambda: HandlerSkips.objects.filter(handler="tests.support.tick_handler").first(), timeout=5)
    assert (skips.late, skips.service, skips.last_event_id) == (1, "testsvc", old.event_id)


def test_an_event_no_handler_here_wants_is_a_dead_letter_and_replays_once_a_handler_exists(
    worker: object, amqp: Connection
) -> None:
    from events import subscriptions
    from events.deadletters import dead_letter_replay
    from tests.support import Orphan, record

    amqp.default_channel.queue_bind("testsvc.events", "events", routing_key="tests.Orphan")  # a binding from newer code
    orphan = Envelope(event_type="Orphan", event_version="1.0", data={"note": "adopt me"}, source="t")
    raw_publish(amqp, orphan.to_json(), "tests.Orphan")

    dead = wait_for(lambda: DeadLetter.objects.filter(service="testsvc").first())
    assert dead.reason == "testsvc has no handler for tests.Orphan (a binding newer than this worker's code?)"
    assert wait_for(lambda: basic_get(amqp, "testsvc.events.dlq"), timeout=5).body == orphan.to_json()

    @subscribe(Orphan, version="1.0", service="testsvc")
    def adopt(event: Event) -> None:
        record("adopted", event, event.data.note)

    try:
        dead_letter_replay(dead_letter=dead)
        wait_for(lambda: _handled("adopted", "adopt me"))
    finally:
        subscriptions.unregister(f"{adopt.__module__}.{adopt.__qualname__}")
        amqp.default_channel.queue_unbind("testsvc.events", "events", routing_key="tests.Orphan")
    dead.refresh_from_db()
    assert dead.status == DeadLetter.Status.REPLAYED


def _envelope_with_timestamp(text: str, timestamp: str) -> tuple[str, bytes]:
    envelope = Envelope(event_type="Ping", event_version="1.0", data={"text": text}, source="test")
    body = json.loads(envelope.to_json())
    body["timestamp"] = timestamp
    return envelope.event_id, json.dumps(body).encode()


ODD_TIMESTAMPS = ["0999-12-31T00:00:00Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00"]


def test_odd_timestamps_among_healthy_events_are_dead_letters_and_every_healthy_event_is_handled(
    worker: object, amqp: Connection
) -> None:
    odd_ids = []
    for n, timestamp in enumerate(ODD_TIMESTAMPS):
        for k in range(5):
            raw_publish(amqp, _good(f"healthy {n}.{k}"), "tests.Ping")
        event_id, body = _envelope_with_timestamp(f"odd {n}", timestamp)
        odd_ids.append(event_id)
        raw_publish(amqp, body, "tests.Ping")
        raw_publish(amqp, _good(f"healthy {n}.after"), "tests.Ping")

    healthy = 6 * len(ODD_TIMESTAMPS)
    wait_for(lambda: Notification.objects.filter(kind="ping-v1", body__startswith="healthy").count() == healthy)
    wait_for(lambda: DeadLetter.objects.count() == len(ODD_TIMESTAMPS))
    assert set(DeadLetter.objects.values_list("event_id", flat=True)) == set(odd_ids)  # found by id in the admin
    assert all("timestamp" in reason for reason in DeadLetter.objects.values_list("reason", flat=True))
    wait_for(lambda: Notification.objects.filter(kind="ping-v2", body__startswith="healthy").count() == healthy)
    assert not Notification.objects.filter(body__startswith="odd").exists()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "RecursionError"),
        (_envelope_with_timestamp("overflow", "0001-01-01T00:00:00+01:00")[1], "outside the years 1-9999"),
        (_good("surrogate").replace(b'"surrogate"', b'"\\udcff"'), "lone surrogate"),
        (_good("nul").replace(b'"nul"', b'"a\\u0000b"'), "NUL character"),
        (_good("nul").replace(b'"1.0"', b'"9.9"').replace(b'"nul"', b'"a\\u0000b"'), "NUL character"),
        (_good("nan").replace(b'"nan"', b"NaN"), "NaN is a number JSON cannot carry"),
    ],
    ids=["deeply-nested", "offset-overflow", "lone-surrogate", "nul", "nul-and-unknown-version", "nan"],
)
def test_content_that_breaks_a_parser_is_dead_lettered_on_first_sight(
    worker: object, amqp: Connection, body: bytes, reason: str
) -> None:
    raw_publish(amqp, body, "tests.Ping")
    raw_publish(amqp, _good("next"), "tests.Ping")

    wait_for(lambda: _handled("ping-v1", "next"))
    dead = wait_for(lambda: DeadLetter.objects.first())
    assert reason in dead.reason
    in_dlq = wait_for(lambda: basic_get(amqp, "testsvc.events.dlq"), timeout=5)
    assert in_dlq.body == body
    # Rejected once, at its first delivery: never requeued.
    assert in_dlq.headers["x-death"][0]["reason"] == "rejected" and in_dlq.headers["x-death"][0]["count"] == 1
    assert in_dlq.headers.get("x-delivery-count", 0) == 0
    assert DeadLetter.objects.count() == 1


def test_cloudevents_are_identified_by_source_and_id_together(worker: object, amqp: Connection) -> None:
    for source in ("/producer-a", "/producer-b"):
        for n in range(1, 6):
            event = CloudEvent(
                attributes={
                    "id": str(n),
                    "source": source,
                    "type": "com.example.tests.Ping",
                    "datacontenttype": "application/json",
                    "eventversion": "1.0",
                },
                data={"text": f"{source} {n}"},
            )
            message = ce_rabbitmq.to_binary_event(event)
            raw_publish(amqp, message.body, "tests.Ping", content_type=message.content_type, headers=message.headers)

    wait_for(lambda: Notification.objects.filter(kind="ping-v1").count() == 10)
    wait_for(lambda: Notification.objects.filter(kind="ping-v2").count() == 10)
    assert InboxEntry.objects.count() == 20
    assert set(InboxEntry.objects.values_list("source", flat=True)) == {"/producer-a", "/producer-b"}


def test_a_task_queue_that_refuses_publishes_holds_the_events_back_and_loses_none(
    worker: Any, amqp: Connection, broker_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from project.celery import app

    vhost = broker.vhost_of(broker_url)
    ready = lambda: amqp.default_channel.queue_declare("testsvc", passive=True).message_count  # noqa: E731
    # The handler tasks queue up unconsumed; once one is waiting, the broker refuses the next.
    app.control.cancel_consumer("testsvc", destination=[worker.hostname], reply=True, timeout=5)
    wait_for(lambda: amqp.default_channel.queue_declare("testsvc", passive=True).consumer_count == 0)
    broker.set_policy(vhost, "full", r"^testsvc$", {"max-length": 1, "overflow": "reject-publish"})
    try:
        raw_publish(amqp, _good("first"), "tests.Ping")
        wait_for(ready, message="the first task to wait in its queue")
        for n in range(30):
            raw_publish(amqp, _good(f"held {n}"), "tests.Ping")
        wait_for(lambda: "the broker refused" in caplog.text, message="the consumer to meet the refusal")
        held = amqp.default_channel.queue_declare("testsvc.events", passive=True)
        assert held.message_count == 0  # not given back to the queue: still with the consumer, unacked
    finally:
        broker.clear_policy(vhost, "full")
        app.control.add_consumer("testsvc", destination=[worker.hostname], reply=True, timeout=5)

    wait_for(lambda: Notification.objects.filter(kind="ping-v1", body__startswith="held").count() == 30, timeout=30)
    wait_for(lambda: Notification.objects.filter(kind="ping-v2", body__startswith="held").count() == 30, timeout=30)
    assert Notification.objects.filter(kind="ping-v1", body="first").count() == 1
    assert not DeadLetter.objects.exists()
    assert basic_get(amqp, "testsvc.events.dlq") is None


def test_what_the_broker_dead_letters_gets_a_dead_letter_with_the_reason(
    purge: None, amqp: Connection, broker_url: str, settings: object
) -> None:
    from tests.conftest import in_process_worker

    vhost = broker.vhost_of(broker_url)
    envelopes = [Envelope(event_type="Ping", event_version="1.0", data={"text": f"queued {n}"}, source="t") for n in range(4)]
    broker.set_policy(vhost, "short", r"^testsvc\.events$", {"max-length": 1})  # an operator's length limit
    try:
        for envelope in envelopes:
            raw_publish(amqp, envelope.to_json(), "tests.Ping")
        wait_for(lambda: amqp.default_channel.queue_declare("testsvc.events.dlq", passive=True).message_count == 3, timeout=10)
    finally:
        broker.clear_policy(vhost, "short")

    with in_process_worker(settings):
        wait_for(lambda: DeadLetter.objects.count() == 3)
        wait_for(lambda: _handled("ping-v1", "queued 3"))
    dead = list(DeadLetter.objects.order_by("event_id"))
    assert {d.event_id for d in dead} == {e.event_id for e in envelopes[:3]}
    assert all(d.stage == DeadLetter.Stage.BROKER and "maxlen" in d.reason and d.raw_body for d in dead)
    assert dead[0].routing_key == "tests.Ping"
    # The DLQ keeps its messages: the admin and the broker agree.
    assert amqp.default_channel.queue_declare("testsvc.events.dlq", passive=True).message_count == 3
    assert amqp.default_channel.queue_declare("testsvc.events.dlq.audit", passive=True).message_count == 0


def test_a_batch_goes_as_soon_as_nothing_more_is_waiting_not_after_the_window(purge: None, settings: Any) -> None:
    # A window of a minute: only the flush when the connection has nothing more to read can be this quick.
    with in_process_worker(settings, batch_window_ms=60_000):
        publish(Ping, {"text": "alone"}, version="1.0")
        relay_all()

        wait_for(lambda: _handled("ping-v1", "alone"), timeout=20, message="the event handled well before the window")


def test_an_ordered_message_the_database_fails_on_is_tried_again_in_place_the_next_held_behind_it(
    purge: None, amqp: Connection, broker_url: str
) -> None:
    """Given back alone, it would come back behind later events of its subject: it is tried again where it is, and an
    ordered message delivered during the backoff waits behind it."""
    from django.db import OperationalError

    from events import topology
    from events.consumer import EventConsumer
    from events.ordered import lane_of

    publish(Step, {"n": 1}, subject="s", sequence=1)
    publish(Step, {"n": 2}, subject="s", sequence=2)
    relay_all()
    messages: list[Any] = []
    reader = Consumer(amqp.channel(), queues=[topology.ordered_queue("testsvc")], on_message=messages.append)
    reader.consume()
    wait_for(lambda: read_deliveries(amqp) or len(messages) == 2, timeout=10, message="the two ordered messages")
    first, second = messages

    class DatabaseDownOnce(EventConsumer):
        reads = 0

        def _read(self, service: str, message: Any, *, ordered: bool) -> Any:
            self.reads += 1
            if self.reads == 1:
                raise OperationalError("the database is down")
            return super()._read(service, message, ordered=ordered)

        def _pause(self, seconds: float) -> None:
            self.on_ordered("testsvc", second)  # delivered during the backoff (not waited out here)

    consumer = DatabaseDownOnce(Connection(broker_url), ["testsvc"], batch_size=10, window=0.005, prefetch=10)
    consumer.on_ordered("testsvc", first)
    assert not first.acknowledged, "the message was given back or dead-lettered"
    assert consumer.reads == 2 and [held[2] for held in consumer._held] == [second]
    receive, service, message = consumer._held.pop(0)
    receive(service, message)
    lane = consumer.lanes._queues[lane_of(_envelope_of(first), consumer.lanes.count)]
    assert [lane.get_nowait().message for _ in range(2)] == [first, second]
    first.ack()
    second.ack()


def _envelope_of(message: Any) -> Envelope:
    from events.envelope import decode_message

    return decode_message(message.body, message.content_type, message.headers)


def test_a_consumer_told_to_stop_while_the_broker_is_unreachable_stops_trying(settings: Any) -> None:
    """A restart of the worker's consumer during an outage must not leave the old one reconnecting for ever."""
    import socket
    import threading

    from events.consumer import EventConsumer, EventConsumerStep

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there: the broker is down
    failures: list[BaseException] = []

    class Recording(EventConsumer):
        def on_connection_error(self, exc: BaseException, interval: float) -> None:
            failures.append(exc)
            super().on_connection_error(exc, interval)

    consumer = Recording(
        Connection(f"amqp://guest:guest@127.0.0.1:{port}//", connect_timeout=1),
        ["testsvc"],
        batch_size=10,
        window=0.005,
        prefetch=10,
    )
    thread = threading.Thread(target=EventConsumerStep._run, args=(consumer,), daemon=True)
    thread.start()
    wait_for(lambda: failures, timeout=20, message="the consumer to be trying to reconnect")

    consumer.should_stop = True
    thread.join(timeout=5)

    assert not thread.is_alive(), "the consumer is still trying to connect after it was told to stop"
    assert consumer.lanes is not None and not consumer.lanes.running
