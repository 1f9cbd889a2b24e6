"""The event catalogue: an AsyncAPI 3.0 document generated from the event registry and the subscriptions.

`document()` describes, from the code that runs (nothing is written by hand):
- a channel per event type: its routing key on the topic exchange `events` (AMQP binding
  `is: routingKey`), with a message per version whose payload is the envelope with `data` as that
  version's JSON Schema (from its pydantic model), and the AMQP headers the relay sends;
- a channel per subscribing service's queue: `<service>.events`, and `<service>.events.ordered`
  for its ordered handlers (AMQP binding `is: queue`);
- an operation `send` per event type (the service that declares it publishes it) and an
  operation `receive` per handler (its service, the version it asked for);
- the converters between versions (`x-converters` on each event type's channel), which the
  consumer uses to give each handler its version whatever version was published.

`schema_of(event_type, version)` is the JSON Schema of one version's data, as the snapshot in
events/schemas/ keeps it (see events/contracts.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from events import registry, subscriptions, topology
from events.envelope import CE_VERSION_EXTENSION
from events.registry import EventType, version_key

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"


def versions_of(event_type: EventType) -> list[str]:
    return sorted(event_type.versions, key=version_key)


def message_id(event_type: EventType, version: str) -> str:
    return f"{event_type.routing_key}.v{version}"


def publisher_of(event_type: EventType) -> str:
    """The service that declares (and so publishes) the event type: the app of its schemas' module."""
    return event_type.versions[event_type.latest].__module__.split(".")[0]


def schema_of(event_type: EventType, version: str) -> dict[str, Any]:
    """The JSON Schema of `version`'s data, self-contained (its definitions under `$defs`)."""
    return event_type.schema(version).model_json_schema(mode="validation")


def _hoisted_schema(event_type: EventType, version: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """`version`'s data schema, its definitions moved to components/schemas under names of their own."""
    prefix = message_id(event_type, version)
    schema = event_type.schema(version).model_json_schema(
        mode="validation", ref_template=f"#/components/schemas/{prefix}.{{model}}"
    )
    for name, definition in schema.pop("$defs", {}).items():
        schemas[f"{prefix}.{name}"] = definition
    schemas[f"{prefix}.data"] = schema
    return {"$ref": f"#/components/schemas/{prefix}.data"}


def _envelope_schema(event_type: EventType, version: str, data: dict[str, Any]) -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    return {
        "type": "object",
        "description": 'The envelope (docs/architecture.md, "The envelope"); the body of the AMQP message.',
        "required": ["eventType", "eventVersion", "timestamp", "eventId", "source", "data"],
        "properties": {
            "eventType": {"type": "string", "const": event_type.name},
            "eventVersion": {"type": "string", "const": version},
            "timestamp": {"type": "string", "format": "date-time", "description": "UTC, ISO 8601, ending in Z"},
            "eventId": {"type": "string", "maxLength": 200, "description": "unique per source; consumers deduplicate on it"},
            "source": {"type": "string", "maxLength": 200},
            "data": data,
            "correlationId": {**nullable_text, "description": "the business flow the event belongs to"},
            "causationId": {**nullable_text, "description": "the eventId of the event whose handler published this one"},
            "subject": {**nullable_text, "maxLength": 200, "description": "the entity; one subject's events leave in order"},
            "sequence": {"type": ["integer", "null"], "description": "position in the subject's stream, where it has one"},
        },
    }


HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "AMQP application headers the relay sends (CloudEvents 1.0 AMQP binding, and W3C trace context).",
    "properties": {
        "eventVersion": {"type": "string"},
        "ce-specversion": {"type": "string", "const": "1.0"},
        "ce-id": {"type": "string", "description": "= eventId"},
        "ce-source": {"type": "string", "description": "= source"},
        "ce-type": {"type": "string", "description": "= eventType"},
        "ce-time": {"type": "string", "format": "date-time", "description": "= timestamp"},
        "ce-subject": {"type": "string", "description": "= subject, when there is one"},
        "traceparent": {
            "type": "string",
            "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C trace context of the flow (OpenTelemetry spans continue it)",
        },
    },
    "required": ["eventVersion", "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"],
}


def _converters(event_type: EventType) -> list[dict[str, str]]:
    return [
        {
            "from": source,
            "to": target,
            "kind": "upcaster" if version_key(source) < version_key(target) else "downcaster",
            "function": f"{func.__module__}.{func.__qualname__}",
        }
        for (source, target), func in sorted(
            event_type.converters.items(), key=lambda kv: (version_key(kv[0][0]), version_key(kv[0][1]))
        )
    ]


def _queue_name(service: str, ordered: bool) -> str:
    return topology.ordered_queue_name(service) if ordered else topology.event_queue_name(service)


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every event type and handler this code base knows."""
    types = registry.all_types()
    handlers = sorted(
        (s for service in settings.SERVICES for s in subscriptions.for_service(service)), key=lambda s: (s.service, s.name)
    )
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"AmqpHeaders": HEADERS_SCHEMA}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    exchange = {"name": topology.EVENTS, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}

    for event_type in types:
        channel_messages = {}
        for version in versions_of(event_type):
            mid = message_id(event_type, version)
            data = _hoisted_schema(event_type, version, schemas)
            description = (event_type.schema(version).__doc__ or "").strip()
            messages[mid] = {
                "name": event_type.name,
                "title": f"{event_type.name} {version}",
                "summary": description.splitlines()[0] if description else f"{event_type.name}, version {version}",
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/AmqpHeaders"},
                "payload": _envelope_schema(event_type, version, data),
                "correlationId": {"location": "$message.payload#/correlationId"},
                "bindings": {
                    "amqp": {"contentEncoding": "utf-8", "messageType": event_type.name, "bindingVersion": AMQP_BINDING_VERSION}
                },
                "x-event-version": version,
                "x-cloudevents": {"type": event_type.name, CE_VERSION_EXTENSION: version},
            }
            channel_messages[f"{event_type.name}.v{version}"] = {"$ref": f"#/components/messages/{mid}"}
        subscribers = [s for s in handlers if s.event_type is event_type]
        channels[event_type.routing_key] = {
            "address": event_type.routing_key,
            "title": event_type.name,
            "description": (
                f"Routing key {event_type.routing_key} on the topic exchange {topology.EVENTS}. "
                f"Published by {publisher_of(event_type)}; newest version {event_type.latest}."
            ),
            "messages": channel_messages,
            "bindings": {"amqp": {"is": "routingKey", "exchange": exchange, "bindingVersion": AMQP_BINDING_VERSION}},
            "x-publisher": publisher_of(event_type),
            "x-latest-version": event_type.latest,
            "x-aliases": [f"{event_type.topic}.{alias}" for alias in event_type.aliases],
            "x-converters": _converters(event_type),
            "x-subscribers": [
                {
                    "service": s.service,
                    "handler": s.name,
                    "version": s.version,
                    "queue": _queue_name(s.service, s.ordered),
                    "ordered": s.ordered,
                }
                for s in subscribers
            ],
        }
        operations[f"send.{event_type.routing_key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{event_type.routing_key}"},
            "title": f"{publisher_of(event_type)} publishes {event_type.name}",
            "description": (
                "Written to the event log in the publisher's transaction and sent by the relay (at least once, "
                f"persistent, publisher-confirmed). publish() writes version {event_type.latest} unless told another."
            ),
            "messages": [{"$ref": f"#/channels/{event_type.routing_key}/messages/{key}"} for key in channel_messages],
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": False, "bindingVersion": AMQP_BINDING_VERSION}},
            "x-service": publisher_of(event_type),
        }

    for service, ordered in sorted({(s.service, s.ordered) for s in handlers}):
        mine = [s for s in handlers if s.service == service and s.ordered == ordered]
        queue_name = _queue_name(service, ordered)
        queue_messages = {}
        for event_type in {id(s.event_type): s.event_type for s in mine}.values():
            for version in versions_of(event_type):
                queue_messages[f"{event_type.name}.v{version}"] = {
                    "$ref": f"#/components/messages/{message_id(event_type, version)}"
                }
        keys = topology.routing_keys(service, ordered=ordered)
        channel_id = f"queue.{queue_name}"
        how = (
            "read by one consumer at a time (single active consumer); the handlers get each subject's events in order"
            if ordered
            else "its events become handler tasks on the task queue " + service
        )
        channels[channel_id] = {
            "address": queue_name,
            "title": f"{service}'s {'ordered ' if ordered else ''}event queue",
            "description": (
                f"Bound to {topology.EVENTS} with {', '.join(keys)}; {how}; dead letters go to "
                f"{topology.dead_letter_queue_name(service)} (exchange {topology.DLX})."
            ),
            "messages": queue_messages,
            "bindings": {
                "amqp": {
                    "is": "queue",
                    "queue": {"name": queue_name, "durable": True, "exclusive": False, "autoDelete": False, "vhost": "/"},
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
            "x-queue-type": settings.EVENTS_QUEUE_TYPE,
            "x-single-active-consumer": ordered,
            "x-routing-keys": keys,
            "x-dead-letter-queue": topology.dead_letter_queue_name(service),
        }
        for subscription in mine:
            event_type = subscription.event_type
            operations[f"receive.{subscription.name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "title": f"{service} handles {event_type.name} as version {subscription.version}",
                "description": (
                    f"The handler {subscription.name} gets version {subscription.version} whatever version was "
                    "published: the consumer converts it along the converters, or dead-letters it with the reason."
                    + (" One subject's events one at a time, in the order they were committed." if ordered else "")
                ),
                "messages": [
                    {"$ref": f"#/channels/{channel_id}/messages/{event_type.name}.v{version}"}
                    for version in versions_of(event_type)
                ],
                "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
                "x-service": service,
                "x-handler": subscription.name,
                "x-version": subscription.version,
                "x-ordered": ordered,
            }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"{settings.EVENTS_SOURCE} events",
            "version": "1.0.0",
            "description": (
                "Every event type, version, converter, publisher and handler of the services, generated from the "
                "event registry. Events are JSON envelopes on the RabbitMQ topic exchange `events`, routed by "
                "`<topic>.<EventType>`; each subscribing service reads its queue `<service>.events`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "description": "The broker named by CELERY_BROKER_URL.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def catalogue() -> list[dict[str, Any]]:
    """What the readable page shows: per event type, its versions with their fields, converters and handlers."""
    doc = document()
    entries = []
    for event_type in registry.all_types():
        channel = doc["channels"][event_type.routing_key]
        versions = []
        for version in reversed(versions_of(event_type)):
            schema = schema_of(event_type, version)
            versions.append(
                {"version": version, "fields": _fields(schema, schema.get("$defs", {})), "doc": (schema.get("description") or "")}
            )
        entries.append(
            {
                "routing_key": event_type.routing_key,
                "name": event_type.name,
                "publisher": channel["x-publisher"],
                "latest": event_type.latest,
                "aliases": channel["x-aliases"],
                "versions": versions,
                "converters": channel["x-converters"],
                "subscribers": channel["x-subscribers"],
            }
        )
    return entries


def _fields(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "", depth: int = 0) -> list[dict[str, Any]]:
    """Rows of (name, type, required, description) for a schema's properties, nested objects flattened with dots."""
    rows = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        resolved = _resolve(prop, defs)
        rows.append(
            {
                "name": f"{prefix}{name}",
                "type": _type_text(prop, defs),
                "required": name in required,
                "description": prop.get("description") or resolved.get("description") or "",
            }
        )
        target = _resolve(resolved.get("items", {}), defs) if resolved.get("type") == "array" else resolved
        if depth < 3 and target.get("properties"):
            suffix = "[]." if resolved.get("type") == "array" else "."
            rows.extend(_fields(target, defs, f"{prefix}{name}{suffix}", depth + 1))
    return rows


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return defs.get(ref.rsplit("/", 1)[-1], {})
    return schema


def _type_text(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_text(option, defs) for option in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type_text(schema.get('items', {}), defs)}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    if "enum" in schema:
        return f"{kind}: {' | '.join(map(str, schema['enum']))}"
    return str(kind)
