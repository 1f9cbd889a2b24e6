"""The relay's bulk encoding of `basic.publish` frames writes what py-amqp writes."""

from datetime import UTC, datetime
from decimal import Decimal
from struct import error as StructError

import amqp
import pytest
from amqp.method_framing import frame_writer

from events.envelope import Envelope
from events.frames import decode_properties, encode_properties, encode_publish


class _Transport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data


class _Connection:
    def __init__(self, frame_max: int) -> None:
        self.frame_max = frame_max
        self.bytes_sent = 0


def _py_amqp_frames(channel_id: int, frame_max: int, exchange: str, routing_key: str, body: bytes, properties: dict) -> bytes:
    transport = _Transport()
    write = frame_writer(_Connection(frame_max), transport)
    message = amqp.Message(body, **properties)
    args = amqp.serialization.dumps("Bssbb", (0, exchange, routing_key, False, False))
    write(1, channel_id, (60, 40), args, message)
    return bytes(transport.written)


def _envelope_properties(**changes: object) -> dict:
    fields: dict = {
        "event_type": "Ping",
        "event_version": "1.0",
        "data": {"text": "é"},
        "source": "tests",
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
        "correlation_id": "c-1",
        "subject": "ping-1",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    envelope = Envelope(**{**fields, **changes})
    return envelope.amqp_properties()


@pytest.mark.parametrize(
    ("body", "frame_max", "properties"),
    [
        (b'{"eventType":"Ping"}', 131072, _envelope_properties()),
        (b"", 131072, _envelope_properties(subject=None, correlation_id=None, traceparent=None)),
        (b"x" * 10000, 4096, _envelope_properties()),  # the body split over several frames
        (b"y" * 4088, 4096, {"content_type": "application/json"}),  # exactly one frame's room
        ("ü".encode() * 10, 131072, {"application_headers": {"n": 1, "f": 1.5, "d": Decimal("1.25"), "b": True}}),
        (b"{}", 131072, {"content_type": "", "priority": 3, "expiration": "60000", "timestamp": 2**40}),
    ],
    ids=["envelope", "no-optional-properties", "big-body", "frame-sized-body", "non-text-headers", "other-properties"],
)
def test_frames_are_the_bytes_py_amqp_writes(body: bytes, frame_max: int, properties: dict) -> None:
    expected = _py_amqp_frames(3, frame_max, "events", "tests.Ping", body, dict(properties))
    assert encode_publish(3, frame_max, "events", "tests.Ping", body, properties) == expected


def test_properties_match_py_amqp() -> None:
    properties = _envelope_properties()
    assert encode_properties(properties) == amqp.Message(b"", **properties)._serialize_properties()


def test_stored_properties_read_back_and_encode_to_the_same_bytes() -> None:
    properties = _envelope_properties()
    encoded = encode_properties(properties)
    assert decode_properties(encoded) == properties
    assert encode_properties(decode_properties(encoded)) == encoded
    assert encode_publish(1, 4096, "events", "tests.Ping", b"{}", None, encoded) == encode_publish(
        1, 4096, "events", "tests.Ping", b"{}", properties
    )


@pytest.mark.parametrize(
    ("properties", "error"),
    [
        ({"timestamp": -1}, StructError),
        ({"message_id": "x" * 256}, StructError),
        ({"application_headers": {"k" * 256: "v"}}, StructError),
        ({"no_such_property": "x"}, ValueError),
    ],
    ids=["negative-timestamp", "long-message-id", "long-header-name", "unknown-property"],
)
def test_what_cannot_be_encoded_raises(properties: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode_publish(1, 131072, "events", "tests.Ping", b"{}", properties)
