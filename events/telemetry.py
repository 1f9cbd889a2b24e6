"""OpenTelemetry: one trace per business flow, from the HTTP request to the events its handlers publish.

Off unless the environment asks for it (`enabled()`): `OTEL_TRACES_EXPORTER` names an exporter
(`otlp`, `console`; `none` is off), or `OTEL_EXPORTER_OTLP_ENDPOINT` /
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set; `OTEL_SDK_DISABLED=true` wins over both. Then
`setup(role)`, called once at process start (web: project/wsgi.py; relay: its command; Celery
workers: `worker_init` in the main process, where the consumer step runs, and
`worker_process_init` in each prefork child), installs the SDK with a batching exporter (OTLP over
HTTP/protobuf, configured by the standard `OTEL_EXPORTER_OTLP_*` variables; sampling by
`OTEL_TRACES_SAMPLER`; the service name by `OTEL_SERVICE_NAME`, else `<EVENTS_SOURCE>-<role>`) and
the SDK's Django, Celery and psycopg instrumentations.

Guarantees:
- Trace context flows whether or not spans are recorded: an event's W3C `traceparent` (outbox row,
  AMQP header, handler task entry) is the active span's context whenever a span is active
  (`current_traceparent()`, used by events/tracing.py); with none it continues the event being
  handled, or starts a trace.
- Where no library has instrumentation (kombu), the spans are this module's:
  `publish <routing key>` (producer) for each message the relay sends, child of the context saved
  in its outbox row, whose context the message carries in its `traceparent` header;
  `receive <routing key>` (consumer) for each message the consumer step reads, child of that
  header, whose context the handler tasks' entries carry (and the Celery task publishing them, when
  its events belong to one trace); `process <routing key>` for each event a handler runs, child of
  the task's span (Celery instrumentation) when that span is in the event's trace, else of the
  entry's traceparent with a link to the task's span (a task may batch events of several flows).
  So request → publish → receive → (Celery task) → process → the next event's publish is one trace.
- Off, every hook is a check of one module variable: no SDK object is made, no span started.
- Telemetry never changes what the bus does: a span is opened and closed around work that runs
  exactly as it would without it, and exporting runs in the SDK's own thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from events.envelope import TRACEPARENT, Envelope

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from events.relay import Outgoing as _Outgoing

logger = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console")
_propagator = TraceContextTextMapPropagator()
_lock = threading.Lock()
# The tracer of this module's spans; None while telemetry is off.
_tracer: trace.Tracer | None = None
_instrumentors: list[Any] = []
# What a hook returns while telemetry is off (reusable, and reentrant).
_OFF: AbstractContextManager[None] = nullcontext()


class TelemetryConfigurationError(Exception):
    """The OTEL_* environment asks for something this project cannot do."""


def exporter_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The span exporters the environment asks for; empty when telemetry is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    value = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if value:
        names = [name.strip() for name in value.split(",") if name.strip() and name.strip() != "none"]
    elif environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        names = ["otlp"]
    else:
        names = []
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise TelemetryConfigurationError(
            f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}; this project exports traces with {', '.join(EXPORTERS)} or none"
        )
    if "otlp" in names:
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
        if protocol.strip() not in ("", "http/protobuf"):
            raise TelemetryConfigurationError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this project exports OTLP over http/protobuf only "
                "(a collector's port 4318)"
            )
    return names


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(exporter_names(environ))


def active() -> bool:
    """Whether spans are being recorded in this process."""
    return _tracer is not None


def setup(role: str) -> bool:
    """Install the SDK, exporters and instrumentations if the environment asks for them; True if it did.

    Idempotent. `role` (web, relay, worker) names the process in the default service name.
    """
    with _lock:
        if _tracer is not None:
            return True
        names = exporter_names()
        if not names:
            return False
        from django.conf import settings
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes: dict[str, Any] = {"process.role": role}
        if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
            attributes["service.name"] = f"{settings.EVENTS_SOURCE}-{role}"
        provider = TracerProvider(resource=Resource.create(attributes))
        for name in names:
            provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
        trace.set_tracer_provider(provider)
        _install(provider)
    logger.info("OpenTelemetry on (%s): exporting spans with %s", role, ", ".join(names))
    return True


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    import requests
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    session = requests.Session()
    # A forked child (a prefork pool process) must not share the parent's keep-alive connections.
    os.register_at_fork(after_in_child=session.close)
    return OTLPSpanExporter(session=session)


def install(provider: TracerProvider) -> None:
    """Record spans with `provider` (without making it the global one): for tests, with an in-memory exporter."""
    with _lock:
        _install(provider)


def _install(provider: TracerProvider) -> None:
    global _tracer
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    for instrumentor in (DjangoInstrumentor(), CeleryInstrumentor(), PsycopgInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
            _instrumentors.append(instrumentor)
    _tracer = provider.get_tracer("events")


def flush(timeout_millis: int = 5000) -> None:
    """Export the spans still waiting in this process (a prefork child about to exit)."""
    provider = trace.get_tracer_provider()
    if _tracer is not None and hasattr(provider, "force_flush"):
        provider.force_flush(timeout_millis)


def uninstall() -> None:
    """Stop recording spans and remove the instrumentations (tests)."""
    global _tracer
    with _lock:
        while _instrumentors:
            _instrumentors.pop().uninstrument()
        _tracer = None


# -- trace context


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, or None when no span is active."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def _context_of(traceparent: str | None) -> otel_context.Context | None:
    """The context continuing `traceparent`; a fresh root context (a new trace) when there is none."""
    if traceparent and TRACEPARENT.match(traceparent):
        return _propagator.extract({"traceparent": traceparent}, context=otel_context.Context())
    return otel_context.Context()


def _traceparent_of(span: trace.Span) -> str:
    span_context = span.get_span_context()
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def _trace_id(traceparent: str | None) -> str | None:
    match = TRACEPARENT.match(traceparent or "")
    return match.group(1) if match else None


def _event_attributes(envelope: Envelope, routing_key: str) -> dict[str, Any]:
    return {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": "events",
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": envelope.event_id,
        "messaging.message.conversation_id": envelope.correlation_id or "",
        "events.type": envelope.event_type,
        "events.version": envelope.event_version,
        "events.source": envelope.source,
    }


def _span_context_of(traceparent: str | None) -> trace.SpanContext | None:
    context = _context_of(traceparent)
    span_context = trace.get_current_span(context).get_span_context() if context is not None else None
    return span_context if span_context is not None and span_context.is_valid else None


# -- the relay


class RelaySpans:
    """The `publish` spans of one relay batch: `start` one per message, `end` them once the batch is sent."""

    def __init__(self) -> None:
        self._spans: dict[int, trace.Span] = {}

    def start(self, message: _Outgoing) -> _Outgoing:
        """Start the message's span; returns the message carrying the span's context (unchanged when off).

        `message` is the relay's `Outgoing` (position, routing_key, body, AMQP properties with the
        envelope's headers); its `traceparent` header, saved in the outbox row, is the span's parent.
        """
        if _tracer is None:
            return message
        properties = message.properties
        headers = dict(properties.get("application_headers") or {})
        attributes = {
            "messaging.system": "rabbitmq",
            "messaging.destination.name": "events",
            "messaging.rabbitmq.destination.routing_key": message.routing_key,
            "messaging.operation.type": "send",
            "messaging.message.id": str(properties.get("message_id", "")),
            "messaging.message.conversation_id": str(properties.get("correlation_id", "")),
            "messaging.message.body.size": len(message.body),
            "events.type": str(properties.get("type", "")),
            "events.version": str(headers.get("eventVersion", "")),
            "events.source": str(properties.get("app_id", "")),
            "events.position": message.position,
        }
        span = _tracer.start_span(
            f"publish {message.routing_key}",
            context=_context_of(headers.get("traceparent")),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        )
        self._spans[message.position] = span
        headers["traceparent"] = _traceparent_of(span)
        return replace(message, properties={**properties, "application_headers": headers})

    def end(self, set_aside: Mapping[int, str]) -> None:
        """End every span; those of rows set aside with an error saying why."""
        for position, span in self._spans.items():
            if position in set_aside:
                span.set_status(Status(StatusCode.ERROR, set_aside[position]))
            span.end()
        self._spans.clear()


# -- the consumer step


def receiving(service: str, routing_key: str, headers: Mapping[str, Any] | None) -> AbstractContextManager[None]:
    """The `receive` span of one message read by the consumer step, current while it is read."""
    if _tracer is None:
        return _OFF
    return _receiving(_tracer, service, routing_key, headers)


@contextmanager
def _receiving(tracer: trace.Tracer, service: str, routing_key: str, headers: Mapping[str, Any] | None) -> Iterator[None]:
    traceparent = (headers or {}).get("traceparent")
    if isinstance(traceparent, bytes):
        traceparent = traceparent.decode("ascii", "replace")
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": f"{service}.events",
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.operation.type": "receive",
        "events.service": service,
    }
    with tracer.start_as_current_span(
        f"receive {routing_key}",
        context=_context_of(traceparent if isinstance(traceparent, str) else None),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ):
        yield


def continued(envelope: Envelope) -> Envelope:
    """`envelope` carrying the active span's context (the consumer step's `receive` span), when telemetry is on."""
    if _tracer is None:
        return envelope
    traceparent = current_traceparent()
    return envelope if traceparent is None else replace(envelope, traceparent=traceparent)


def failed(reason: str) -> None:
    """Mark the active span as failed (a dead letter, say)."""
    if _tracer is not None:
        trace.get_current_span().set_status(Status(StatusCode.ERROR, reason[:500]))


def dispatching(entries: Sequence[Mapping[str, Any]]) -> AbstractContextManager[None]:
    """Around the publish of a handler task: its events' context, when they all belong to one trace.

    The Celery instrumentation then makes the task's spans part of that trace.
    """
    if _tracer is None or not entries:
        return _OFF
    traceparents = [entry.get("traceparent") for entry in entries]
    if len({_trace_id(tp) for tp in traceparents}) != 1 or _trace_id(traceparents[-1]) is None:
        return _OFF
    return _attached(_context_of(traceparents[-1]))


@contextmanager
def _attached(ctx: otel_context.Context | None) -> Iterator[None]:
    token = otel_context.attach(ctx or otel_context.Context())
    try:
        yield
    finally:
        otel_context.detach(token)


# -- handlers


def processing(handler: str, envelope: Envelope, routing_key: str) -> AbstractContextManager[None]:
    """The `process` span of one event run by a handler, current while the handler runs."""
    if _tracer is None:
        return _OFF
    return _processing(_tracer, handler, envelope, routing_key)


@contextmanager
def _processing(tracer: trace.Tracer, handler: str, envelope: Envelope, routing_key: str) -> Iterator[None]:
    task_span = trace.get_current_span()
    task_context = task_span.get_span_context()
    links: list[Link] = []
    if task_context.is_valid and f"{task_context.trace_id:032x}" == _trace_id(envelope.traceparent):
        parent = None  # the task's span, current now
    else:
        parent = _context_of(envelope.traceparent)
        if task_context.is_valid:
            links.append(Link(task_context))
    attributes = {**_event_attributes(envelope, routing_key), "messaging.operation.type": "process", "events.handler": handler}
    with tracer.start_as_current_span(
        f"process {routing_key}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links
    ):
        yield


def processing_batch(handler: str, envelopes: list[Envelope], routing_key: str) -> AbstractContextManager[None]:
    """The `process` span of a batch handler's run: a child of the current (task) span, linked to each event's trace."""
    if _tracer is None:
        return _OFF
    return _processing_batch(_tracer, handler, envelopes, routing_key)


@contextmanager
def _processing_batch(tracer: trace.Tracer, handler: str, envelopes: list[Envelope], routing_key: str) -> Iterator[None]:
    links = [Link(sc) for sc in (_span_context_of(e.traceparent) for e in envelopes) if sc is not None]
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": "events",
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.operation.type": "process",
        "messaging.batch.message_count": len(envelopes),
        "events.handler": handler,
    }
    with tracer.start_as_current_span(f"process {routing_key}", kind=SpanKind.CONSUMER, attributes=attributes, links=links):
        yield
