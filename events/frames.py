"""AMQP 0-9-1 frames of `basic.publish`, encoded in bulk for the relay.

py-amqp encodes and writes each message on its own (a generic serializer, one `sendall` per
message). The relay publishes hundreds at once, so it encodes their frames here, with a serializer
for the few property types it uses, into one buffer written with one call.

Guarantees:
- The bytes are those py-amqp would write for the same message (method frame `basic.publish`, a
  content header with the properties in py-amqp's order, body frames of at most `frame_max - 8`
  bytes); tests compare the two.
- A message is encoded whole before anything is added to the buffer: one that cannot be encoded
  (a property out of range, a string too long for a short string) raises and leaves the buffer
  as it was, as py-amqp does.
"""

from __future__ import annotations

from struct import pack
from typing import Any

from amqp.serialization import PROPERTY_CLASSES, _write_table

# basic.publish: class 60, method 40; the content header of class 60.
_PUBLISH = pack(">HH", 60, 40)
_FRAME_END = b"\xce"
_METHOD, _HEADER, _BODY = 1, 2, 3

# AMQP basic properties in flag order (bit 15 first), with their wire types (as py-amqp's Message.PROPERTIES).
PROPERTIES = (
    ("content_type", "s"),
    ("content_encoding", "s"),
    ("application_headers", "F"),
    ("delivery_mode", "o"),
    ("priority", "o"),
    ("correlation_id", "s"),
    ("reply_to", "s"),
    ("expiration", "s"),
    ("message_id", "s"),
    ("timestamp", "L"),
    ("type", "s"),
    ("user_id", "s"),
    ("app_id", "s"),
    ("cluster_id", "s"),
)
_KNOWN = {name for name, _ in PROPERTIES}


def _shortstr(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return pack("B", len(raw)) + raw  # struct.error past 255 bytes, as py-amqp


_TEXT_ENTRY: dict[str, bytes] = {}  # header name -> its shortstr and the type tag of a long string


def _table(table: dict[str, Any]) -> bytes:
    parts = []
    for key, value in table.items():
        if not isinstance(value, str):
            out: list[bytes] = []
            _write_table(table, out.append, [])  # anything but text: py-amqp's own table writer
            return b"".join(out)
        prefix = _TEXT_ENTRY.get(key)
        if prefix is None:
            prefix = _shortstr(key) + b"S"
            if len(_TEXT_ENTRY) < 1024:
                _TEXT_ENTRY[key] = prefix
        raw = value.encode("utf-8", "surrogatepass")
        parts += (prefix, pack(">I", len(raw)), raw)
    data = b"".join(parts)
    return pack(">I", len(data)) + data


def encode_properties(properties: dict[str, Any]) -> bytes:
    """Property flags and property list of a content header, as py-amqp's `Message._serialize_properties`."""
    unknown = set(properties) - _KNOWN
    if unknown:
        raise ValueError(f"unknown AMQP properties: {', '.join(sorted(unknown))}")
    flags = 0
    values = []
    bit = 15
    for name, kind in PROPERTIES:
        value = properties.get(name)
        if value is not None:
            flags |= 1 << bit
            if kind == "s":
                values.append(_shortstr(value or ""))
            elif kind == "F":
                values.append(_table(value or {}))
            elif kind == "o":
                values.append(pack("B", value))
            else:  # "L"
                values.append(pack(">Q", value))
        bit -= 1
    return pack(">H", flags) + b"".join(values)


def decode_properties(encoded: bytes) -> dict[str, Any]:
    """The properties `encode_properties` encoded (py-amqp's own reader of a content header's property list)."""
    properties, _ = PROPERTY_CLASSES[60](encoded, 0)
    return dict(properties)


_METHOD_FRAMES: dict[tuple[int, str, str], bytes] = {}  # (channel, exchange, routing key) -> the method frame


def _method_frame(channel_id: int, exchange: str, routing_key: str) -> bytes:
    key = (channel_id, exchange, routing_key)
    frame = _METHOD_FRAMES.get(key)
    if frame is None:
        method = _PUBLISH + b"\x00\x00" + _shortstr(exchange) + _shortstr(routing_key) + b"\x00"
        frame = pack(">BHI", _METHOD, channel_id, len(method)) + method + _FRAME_END
        if len(_METHOD_FRAMES) < 4096:
            _METHOD_FRAMES[key] = frame
    return frame


def encode_publish(
    channel_id: int,
    frame_max: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    properties: dict[str, Any] | None,
    encoded: bytes | None = None,
) -> bytes:
    """The frames of one `basic.publish` (mandatory and immediate off) of `body` with `properties`, or with
    properties already encoded by `encode_properties` (`encoded`)."""
    method = _method_frame(channel_id, exchange, routing_key)
    if encoded is None:
        encoded = encode_properties(properties or {})
    # The content header frame: class 60, weight 0, the body size, then flags and property list.
    parts = [method, pack(">BHIHHQ", _HEADER, channel_id, 12 + len(encoded), 60, 0, len(body)), encoded, _FRAME_END]
    chunk = frame_max - 8
    for start in range(0, len(body), chunk):
        piece = body[start : start + chunk]
        parts += (pack(">BHI", _BODY, channel_id, len(piece)), piece, _FRAME_END)
    return b"".join(parts)
