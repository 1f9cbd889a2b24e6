import json
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.v1.event import CloudEvent

from events.envelope import Envelope, decode_message
from events.errors import InvalidTimestamp, MalformedEvent

ORDER_PLACED_1_0 = (
    b'{"eventType": "OrderPlaced", "eventVersion": "1.0", "timestamp": "2025-07-07T14:05:00Z", '
    b'"eventId": "8fc67c8d-921c-443a-a67a-b3aefaed3384", "source": "order-service", '
    b'"data": {"orderId": "ORD123456", "userId": "USR789", "orderStatus": "Not_Shipped"}, '
    b'"correlationId": "1f0c2a4e-0000-4000-8000-000000000001", "causationId": null, "subject": "ORD123456", "sequence": 1}'
)

ORDER_PLACED_2_1 = (
    b'{"eventType": "OrderPlaced", "eventVersion": "2.1", "timestamp": "2025-07-07T14:05:00Z", '
    b'"eventId": "8fc67c8d-921c-443a-a67a-b3aefaed3384", "source": "order-service", '
    b'"data": {"orderId": "ORD123456", "status": "Not_Shipped", '
    b'"items": [{"productId": "P001", "quantity": 2}], '
    b'"shippingAddress": {"city": "Hyderabad", "pincode": "000001"}}, '
    b'"correlationId": "1f0c2a4e-0000-4000-8000-000000000001", '
    b'"causationId": "0d1e2f3a-0000-4000-8000-000000000002", "subject": "ORD123456", "sequence": 1}'
)


@pytest.mark.parametrize("body", [ORDER_PLACED_1_0, ORDER_PLACED_2_1], ids=["1.0", "2.1"])
def test_order_placed_examples_round_trip_byte_for_byte(body: bytes) -> None:
    envelope = Envelope.from_json(body)

    assert envelope.to_json() == body
    assert list(json.loads(envelope.to_json())) == [
        "eventType",
        "eventVersion",
        "timestamp",
        "eventId",
        "source",
        "data",
        "correlationId",
        "causationId",
        "subject",
        "sequence",
    ]


def test_fractional_seconds_survive_the_round_trip() -> None:
    envelope = Envelope(
        event_type="Ping", event_version="1.0", data={}, source="s", timestamp=datetime(2025, 1, 2, 3, 4, 5, 120000, UTC)
    )

    assert json.loads(envelope.to_json())["timestamp"] == "2025-01-02T03:04:05.120000Z"
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_amqp_properties_mirror_the_envelope() -> None:
    envelope = Envelope.from_dict(json.loads(ORDER_PLACED_2_1), traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")

    properties = envelope.amqp_properties()

    assert properties["message_id"] == "8fc67c8d-921c-443a-a67a-b3aefaed3384"
    assert properties["type"] == "OrderPlaced"
    assert properties["app_id"] == "order-service"
    assert properties["correlation_id"] == "1f0c2a4e-0000-4000-8000-000000000001"
    assert properties["content_type"] == "application/json"
    assert properties["delivery_mode"] == 2
    assert properties["timestamp"] == int(datetime(2025, 7, 7, 14, 5, tzinfo=UTC).timestamp())
    assert properties["application_headers"] == {
        "eventVersion": "2.1",
        "ce-specversion": "1.0",
        "ce-id": "8fc67c8d-921c-443a-a67a-b3aefaed3384",
        "ce-source": "order-service",
        "ce-type": "OrderPlaced",
        "ce-time": "2025-07-07T14:05:00Z",
        "ce-subject": "ORD123456",
        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    }


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"\x80\x04\x95", "application/x-python-serialize", "is not accepted: events are JSON only"),
        (b'["a list"]', "application/json", "must be a JSON object"),
        (
            b'{"eventType": "OrderPlaced", "data": {}}',
            "application/json",
            "missing required fields: eventVersion, timestamp, eventId, source",
        ),
        (ORDER_PLACED_1_0.replace(b'"2025-07-07T14:05:00Z"', b'"yesterday"'), "application/json", "timestamp is not ISO 8601"),
        (ORDER_PLACED_1_0.replace(b'"sequence": 1', b'"sequence": "one"'), "application/json", "sequence must be an integer"),
        (ORDER_PLACED_1_0.replace(b'"8fc67c8d', b'"' + b"x" * 200), "application/json", "eventId is longer than 200 characters"),
    ],
    ids=["malformed-json", "pickle", "not-an-object", "missing-fields", "bad-timestamp", "bad-sequence", "long-id"],
)
def test_unreadable_messages_say_why(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode_message(body, content_type, {})


def _cloud_event() -> CloudEvent:
    return CloudEvent(
        attributes={
            "id": "ce-42",
            "source": "/warehouse/java-service",
            "type": "com.example.orders.OrderPlaced",
            "subject": "ORD9",
            "time": datetime(2025, 7, 7, 14, 5, tzinfo=UTC),
            "datacontenttype": "application/json",
            "eventversion": "1.0",
            "correlationid": "corr-1",
        },
        data={"orderId": "ORD9", "userId": "U1", "orderStatus": "Not_Shipped"},
    )


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevents_from_other_languages_map_onto_the_envelope(mode: str) -> None:
    encode = ce_rabbitmq.to_binary_event if mode == "binary" else ce_rabbitmq.to_structured_event
    message = encode(_cloud_event())

    envelope = decode_message(message.body, message.content_type, message.headers)

    assert envelope.event_type == "OrderPlaced"
    assert envelope.event_version == "1.0"
    assert envelope.event_id == "ce-42"
    assert envelope.source == "/warehouse/java-service"
    assert envelope.subject == "ORD9"
    assert envelope.correlation_id == "corr-1"
    assert envelope.timestamp == datetime(2025, 7, 7, 14, 5, tzinfo=UTC)
    assert envelope.data == {"orderId": "ORD9", "userId": "U1", "orderStatus": "Not_Shipped"}


def test_a_cloudevent_without_a_version_is_refused_with_the_reason() -> None:
    event = CloudEvent(
        attributes={"id": "1", "source": "/x", "type": "OrderPlaced", "datacontenttype": "application/json"}, data={}
    )
    message = ce_rabbitmq.to_binary_event(event)

    with pytest.raises(MalformedEvent, match="eventVersion"):
        decode_message(message.body, message.content_type, message.headers)


def test_a_traceparent_that_is_not_w3c_trace_context_is_dropped() -> None:
    assert decode_message(ORDER_PLACED_1_0, "application/json", {"traceparent": "x" * 500}).traceparent is None
    good = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    assert decode_message(ORDER_PLACED_1_0, "application/json", {"traceparent": good}).traceparent == good


# Timestamps no envelope may carry: before 1970 (AMQP counts unsigned seconds), before year 1000 (once
# written unpadded), an offset that leaves the years 1-9999 in UTC, no time zone.
BAD_TIMESTAMPS = [
    ("0999-12-31T00:00:00Z", "before 1970-01-01"),
    ("0001-01-01T00:00:00Z", "before 1970-01-01"),
    ("0042-06-01T12:00:00+00:00", "before 1970-01-01"),
    ("1969-12-31T23:59:59.999999Z", "before 1970-01-01"),
    ("1900-01-01T00:00:00+05:30", "before 1970-01-01"),
    ("0001-01-01T00:00:00+01:00", "outside the years 1-9999"),
    ("9999-12-31T23:30:00-01:00", "outside the years 1-9999"),
    ("2025-07-07T14:05:00", "no time zone"),
    ("2025-13-01T00:00:00Z", "not ISO 8601"),
]


@pytest.mark.parametrize(("timestamp", "reason"), BAD_TIMESTAMPS, ids=[t for t, _ in BAD_TIMESTAMPS])
def test_a_timestamp_outside_the_rule_is_refused_with_its_reason(timestamp: str, reason: str) -> None:
    body = ORDER_PLACED_1_0.replace(b'"2025-07-07T14:05:00Z"', json.dumps(timestamp).encode())

    with pytest.raises(InvalidTimestamp, match=reason):
        decode_message(body, "application/json", {})


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
        ("2025-07-07T16:05:00+02:00", "2025-07-07T14:05:00Z"),
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
        ("1970-01-01T05:30:00+05:30", "1970-01-01T00:00:00Z"),
    ],
)
def test_timestamps_inside_the_rule_are_normalised_to_utc(given: str, stored: str) -> None:
    body = ORDER_PLACED_1_0.replace(b'"2025-07-07T14:05:00Z"', json.dumps(given).encode())

    envelope = decode_message(body, "application/json", {})

    assert json.loads(envelope.to_json())["timestamp"] == stored
    assert envelope.amqp_properties()["timestamp"] >= 0


@pytest.mark.parametrize(
    "when", [datetime(1969, 7, 20, 20, 17, tzinfo=UTC), datetime(999, 12, 31, tzinfo=UTC), datetime(2025, 1, 1)], ids=str
)
def test_no_envelope_can_be_made_with_a_timestamp_outside_the_rule(when: datetime) -> None:
    with pytest.raises(InvalidTimestamp):
        Envelope(event_type="Ping", event_version="1.0", data={}, source="s", timestamp=when)


@pytest.mark.parametrize("when", ["0999-12-31T00:00:00Z", "1960-01-01T00:00:00Z"])
def test_a_cloudevent_timestamped_outside_the_rule_is_refused(when: str) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/go", "ce-type": "x.Ping", "ce-time": when}

    with pytest.raises(MalformedEvent, match="timestamp|time"):
        decode_message(b'{"text": "hi"}', "application/json", headers)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "RecursionError"),
        ('{"eventType": "\udcff"}'.encode("utf-8", "surrogatepass"), "not valid JSON: UnicodeDecodeError"),
        (ORDER_PLACED_1_0.replace(b"USR789", b"USR\\udcff"), "lone surrogate"),
        (ORDER_PLACED_1_0.replace(b"USR789", b"USR\\u0000"), "NUL character"),
        (ORDER_PLACED_1_0.replace(b'"userId"', b'"user\\u0000Id"'), "NUL character"),
        (b'{"eventType": 1e999999}', "must be a string|missing required fields|JSON cannot carry"),
        (ORDER_PLACED_1_0.replace(b'"USR789"', b"NaN"), "NaN is a number JSON cannot carry"),
        (ORDER_PLACED_1_0.replace(b'"USR789"', b"-1.5e999"), "-1.5e999 is a number JSON cannot carry"),
    ],
    ids=["deeply-nested", "bad-utf8", "escaped-lone-surrogate", "nul", "nul-in-a-key", "huge-number", "nan", "infinity"],
)
def test_content_that_breaks_a_parser_is_malformed_not_an_unexpected_error(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode_message(body, "application/json", {})


def test_characters_outside_the_basic_plane_written_as_surrogate_pairs_are_read() -> None:
    body = ORDER_PLACED_1_0.replace(b"USR789", b"USR\\ud83d\\ude00")

    assert decode_message(body, "application/json", {}).data["userId"] == "USR\U0001f600"


@pytest.mark.parametrize(
    ("attributes", "data", "reason"),
    [
        ({"id": "x\ud800"}, {"text": "hi"}, "lone surrogate"),
        ({"id": "1"}, {"text": "a\u0000"}, "NUL character"),
        ({"id": "1", "subject": "s\u0000"}, {"text": "hi"}, "NUL character"),
    ],
    ids=["surrogate-id", "nul-data", "nul-subject"],
)
def test_a_cloudevent_holding_text_no_database_stores_is_refused(attributes: dict, data: dict, reason: str) -> None:
    event = CloudEvent(
        attributes={
            "source": "/go",
            "type": "x.Ping",
            "datacontenttype": "application/json",
            "eventversion": "1.0",
            **attributes,
        },
        data=data,
    )
    message = ce_rabbitmq.to_structured_event(event)

    with pytest.raises(MalformedEvent, match=reason):
        decode_message(message.body, message.content_type, message.headers)
