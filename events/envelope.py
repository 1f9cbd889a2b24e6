"""The envelope: the one JSON shape of every event on the wire (see docs/architecture.md, "The envelope").

`Envelope.to_json` writes the fields in the documented order with the documented spelling, so
that a body round-trips byte for byte. `decode_message` is the single entry point for bytes
coming off the broker: it accepts this project's envelope and CloudEvents 1.0 in the RabbitMQ
binding (binary or structured mode) and raises `MalformedEvent` with a reason for anything else,
whatever goes wrong while reading (a number that overflows, JSON nested too deep). It never
deserializes anything but JSON.

One rule says what a timestamp may be, and every envelope is held to it when it is made
(`publish()`, the relay, the consumer, CloudEvents, handler tasks): aware, normalised to UTC, and
between `MIN_TIMESTAMP` (the AMQP timestamp property counts unsigned seconds since 1970) and
`MAX_TIMESTAMP` (the last instant every store can hold). `InvalidTimestamp` says which rule failed.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import rabbitmq as ce_rabbitmq

from events.errors import InvalidTimestamp, MalformedEvent

CONTENT_TYPE = "application/json"
CLOUDEVENTS_STRUCTURED = "application/cloudevents+json"
REQUIRED_FIELDS = ("eventType", "eventVersion", "timestamp", "eventId", "source", "data")
OPTIONAL_FIELDS = ("correlationId", "causationId", "subject", "sequence")
# CloudEvents extension attribute that carries the event version (extension names are lowercase).
CE_VERSION_EXTENSION = "eventversion"
# The longest values the event log, inbox and dead-letter store keep.
MAX_LENGTHS = {"eventType": 100, "eventVersion": 20, "eventId": 200, "source": 200, "subject": 200}
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
# Escapes of text no database stores: NUL (PostgreSQL refuses it) and \uD800-\uDFFF (half of a
# surrogate pair, which is fine, or a lone surrogate, which is not). Seen in a body, the parsed
# content is checked string by string.
UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89abcdefABCDEF])")
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def check_timestamp(value: Any) -> datetime:
    """`value` in UTC if it is an event timestamp this project can carry; else `InvalidTimestamp`."""
    if not isinstance(value, datetime):
        raise InvalidTimestamp(f"timestamp must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidTimestamp(f"timestamp has no time zone: {value.isoformat()}")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise InvalidTimestamp(f"timestamp is outside the years 1-9999 once in UTC: {value.isoformat()}") from None
    if not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:
        raise InvalidTimestamp(f"timestamp {format_timestamp(value)} is before 1970-01-01T00:00:00Z, which AMQP cannot carry")
    return value


def unstorable(value: Any) -> str | None:
    """Why `value` (JSON data) holds what no database can store, or None: a NUL character, a lone surrogate, or a
    number that is not finite (NaN or infinity, which JSON has no words for)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a string holds a NUL character (\\u0000), which databases cannot store"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds a lone surrogate (half of a UTF-16 pair), which is not valid Unicode"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"a number is {item}, which JSON cannot carry"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _not_a_number(name: str) -> float:
    """json.loads reads NaN, Infinity and -Infinity, which are not JSON: refused."""
    raise ValueError(f"{name} is a number JSON cannot carry")


def _finite(literal: str) -> float:
    """A JSON number too large for a float (1e999) would be read as infinity: refused."""
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal[:50]} is a number JSON cannot carry")
    return value


def check_storable(value: Any) -> None:
    if (reason := unstorable(value)) is not None:
        raise MalformedEvent(f"event content cannot be stored: {reason}")


def format_timestamp(value: datetime) -> str:
    value = value.astimezone(UTC)
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def parse_timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidTimestamp(f"timestamp must be an ISO 8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidTimestamp(f"timestamp is not ISO 8601: {value[:100]!r}") from None
    if parsed.tzinfo is None:
        raise InvalidTimestamp(f"timestamp has no time zone: {value[:100]!r}")
    return check_timestamp(parsed)


@dataclass(frozen=True)
class Envelope:
    event_type: str
    event_version: str
    data: dict[str, Any]
    source: str
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None
    causation_id: str | None = None
    subject: str | None = None
    sequence: int | None = None
    # Travels in the AMQP headers, not in the body.
    traceparent: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp", check_timestamp(self.timestamp))

    def to_dict(self) -> dict[str, Any]:
        return {
            "eventType": self.event_type,
            "eventVersion": self.event_version,
            "timestamp": format_timestamp(self.timestamp),
            "eventId": self.event_id,
            "source": self.source,
            "data": self.data,
            "correlationId": self.correlation_id,
            "causationId": self.causation_id,
            "subject": self.subject,
            "sequence": self.sequence,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False).encode()

    @classmethod
    def from_dict(cls, body: Any, *, traceparent: str | None = None) -> Envelope:
        if not isinstance(body, dict):
            raise MalformedEvent(f"envelope must be a JSON object, got {type(body).__name__}")
        missing = [name for name in REQUIRED_FIELDS if name not in body or body[name] in (None, "")]
        if missing:
            raise MalformedEvent(f"envelope is missing required fields: {', '.join(missing)}")
        for name in ("eventType", "eventVersion", "eventId", "source"):
            if not isinstance(body[name], str):
                raise MalformedEvent(f"{name} must be a string")
        for name, limit in MAX_LENGTHS.items():
            if isinstance(body.get(name), str) and len(body[name]) > limit:
                raise MalformedEvent(f"{name} is longer than {limit} characters")
        if not isinstance(body["data"], dict):
            raise MalformedEvent("data must be a JSON object")
        sequence = body.get("sequence")
        if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)):
            raise MalformedEvent("sequence must be an integer")
        return cls(
            event_type=body["eventType"],
            event_version=body["eventVersion"],
            timestamp=parse_timestamp(body["timestamp"]),
            event_id=body["eventId"],
            source=body["source"],
            data=body["data"],
            correlation_id=body.get("correlationId"),
            causation_id=body.get("causationId"),
            subject=body.get("subject"),
            sequence=sequence,
            traceparent=traceparent,
        )

    @classmethod
    def from_json(cls, raw: bytes | str, *, traceparent: str | None = None) -> Envelope:
        try:
            # Strict UTF-8: json.loads would let lone surrogates through.
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            body = json.loads(text, parse_constant=_not_a_number, parse_float=_finite)
        except (ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
            raise MalformedEvent(f"body is not valid JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
        if UNSTORABLE_ESCAPE.search(text):
            check_storable(body)
        return cls.from_dict(body, traceparent=traceparent)

    def with_data(self, data: dict[str, Any], version: str) -> Envelope:
        return replace(self, data=data, event_version=version)

    def amqp_properties(self) -> dict[str, Any]:
        """AMQP basic properties mirroring the envelope, CloudEvents headers included."""
        headers: dict[str, Any] = {
            "eventVersion": self.event_version,
            "ce-specversion": "1.0",
            "ce-id": self.event_id,
            "ce-source": self.source,
            "ce-type": self.event_type,
            "ce-time": format_timestamp(self.timestamp),
        }
        if self.subject:
            headers["ce-subject"] = self.subject
        if self.traceparent:
            headers["traceparent"] = self.traceparent
        properties: dict[str, Any] = {
            "content_type": CONTENT_TYPE,
            "content_encoding": "utf-8",
            "delivery_mode": 2,
            "message_id": self.event_id,
            "type": self.event_type,
            "app_id": self.source,
            "timestamp": int(self.timestamp.timestamp()),
            "application_headers": headers,
        }
        if self.correlation_id:
            properties["correlation_id"] = self.correlation_id
        return properties


def decode_message(body: bytes, content_type: str | None, headers: dict[str, Any] | None) -> Envelope:
    """Read one broker message as an envelope, or raise `MalformedEvent` saying why not."""
    try:
        return _decode_message(body, content_type, headers)
    except MalformedEvent:
        raise
    except Exception as exc:  # whatever the content makes a parser do, it is the content's fault
        raise MalformedEvent(f"message cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from None


def _decode_message(body: bytes, content_type: str | None, headers: dict[str, Any] | None) -> Envelope:
    headers = headers or {}
    content_type = (content_type or "").split(";")[0].strip().lower()
    traceparent = _text(headers.get("traceparent"))
    if traceparent is not None and not TRACEPARENT.match(traceparent):
        traceparent = None  # not W3C trace context: start a new trace rather than refuse the event
    if content_type.startswith("application/cloudevents"):
        return _from_cloudevent(body, content_type, headers, traceparent)
    if content_type not in ("application/json", ""):
        raise MalformedEvent(f"content type {content_type!r} is not accepted: events are JSON only")
    if "eventVersion" not in headers and "ce-specversion" in headers:
        return _from_cloudevent(body, content_type, headers, traceparent)
    return Envelope.from_json(body, traceparent=traceparent)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if value is None else str(value)


def _from_cloudevent(body: bytes, content_type: str, headers: dict[str, Any], traceparent: str | None) -> Envelope:
    message = ce_rabbitmq.RabbitMQMessage(
        headers={k: _text(v) for k, v in headers.items() if k.startswith("ce-") and v is not None},
        content_type=content_type or None,
        body=body,
    )
    try:
        event = ce_rabbitmq.from_rabbitmq_event(message)
    except Exception as exc:  # the SDK raises a variety of errors for bad input
        raise MalformedEvent(f"not a valid CloudEvent: {exc}") from None
    attributes = event.get_attributes()
    data = event.get_data()
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError:
            raise MalformedEvent("CloudEvent data is not JSON") from None
    check_storable([attributes, data])
    event_type = str(attributes["type"]).rsplit(".", 1)[-1]
    version = attributes.get(CE_VERSION_EXTENSION) or _text(headers.get("eventVersion"))
    timestamp = attributes.get("time") or datetime.now(UTC)
    return Envelope.from_dict(
        {
            "eventType": event_type,
            "eventVersion": version,
            "timestamp": format_timestamp(check_timestamp(timestamp)) if isinstance(timestamp, datetime) else timestamp,
            "eventId": str(attributes["id"]),
            "source": str(attributes["source"]),
            "data": data,
            "correlationId": attributes.get("correlationid"),
            "causationId": attributes.get("causationid"),
            "subject": attributes.get("subject"),
            "sequence": _int_or_none(attributes.get("sequence")),
        },
        traceparent=traceparent,
    )


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MalformedEvent(f"sequence must be an integer, got {value!r}") from None
