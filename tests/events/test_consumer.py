import pickle
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.v1.event import CloudEvent
from kombu import Connection

from events import Event, publish, subscribe
from events.envelope import Envelope
from events.models import DeadLetter
from notifications.models import Notification
from tests.conftest import basic_get, raw_publish, relay_all
from tests.support import Ping, Shipment, wait_for

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
