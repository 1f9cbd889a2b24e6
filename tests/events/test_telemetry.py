"""OpenTelemetry: one trace from an HTTP request through the outbox, the relay, the consumer step and a handler
into the event that handler publishes; and off unless the OTEL_* environment asks for it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from events import publish, telemetry
from events.models import StoredEvent
from notifications.models import Notification
from payments.models import Payment
from tests.commerce import ADDRESS, catalogue, customer
from tests.conftest import ROOT, in_process_worker, relay_all
from tests.support import Ping, wait_for


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    yield provider
    provider.shutdown()


@pytest.fixture
def spans(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """Spans recorded in memory, with the Django, Celery and psycopg instrumentations on, for this test only."""
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.install(provider)
    try:
        yield exporter
    finally:
        telemetry.uninstall()


def by_id(finished: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in finished}


def ancestry(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> list[str]:
    """The names of `span` and its ancestors, root last."""
    names = [span.name]
    while span.parent is not None:
        span = spans[span.parent.span_id]
        names.append(span.name)
    return names


def trace_id_of(traceparent: str) -> int:
    return int(traceparent.split("-")[1], 16)


def span_id_of(traceparent: str) -> int:
    return int(traceparent.split("-")[2], 16)


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_one_trace_covers_request_relay_consumer_handler_and_the_next_event(
    spans: InMemorySpanExporter, client: Client, purge: None, settings: Any
) -> None:
    catalogue()
    customer()
    with in_process_worker(settings, queues=["payments"]):
        response = client.post(
            "/api/orders/",
            {"items": [{"productId": "P001", "quantity": 1}], "shippingAddress": ADDRESS},
            content_type="application/json",
            HTTP_AUTHORIZATION="Basic YWRhOnB3LWNvcnJlY3QtaG9yc2UtNDI=",  # ada:pw-correct-horse-42
        )
        assert response.status_code == 201, response.content
        order_id = response.json()["orderId"]
        placed = StoredEvent.objects.get(event_type="OrderPlaced", subject=order_id)
        assert relay_all() >= 1
        captured = wait_for(
            lambda: StoredEvent.objects.filter(event_type="PaymentCaptured", subject=order_id).first(),
            timeout=60,
            message="PaymentCaptured published by the payments handler",
        )
        assert relay_all() >= 1
    assert Payment.objects.get(order_id=order_id).status == Payment.Status.CAPTURED

    finished = spans.get_finished_spans()
    spans_by_id = by_id(finished)
    server = next(s for s in finished if s.kind == SpanKind.SERVER and "orders" in str(s.attributes.get("http.route")))
    flow = server.context.trace_id

    # The outbox row saved the request's context; the relay's span continues it and the message carries the relay's.
    assert trace_id_of(placed.metadata["traceparent"]) == flow
    assert span_id_of(placed.metadata["traceparent"]) == server.context.span_id
    relayed = next(s for s in finished if s.name == "publish orders.OrderPlaced")
    assert relayed.kind == SpanKind.PRODUCER and relayed.parent.span_id == server.context.span_id
    assert relayed.attributes["messaging.message.id"] == str(placed.event_id)
    received = next(s for s in finished if s.name == "receive orders.OrderPlaced")
    assert received.kind == SpanKind.CONSUMER and received.parent.span_id == relayed.context.span_id
    assert received.attributes["messaging.destination.name"] == "payments.events"
    handled = next(s for s in finished if s.name == "process orders.OrderPlaced")
    assert handled.attributes["events.handler"] == "payments.handlers.charge_order"
    # The Celery task carrying the event is part of the flow: received → apply_async → run → process.
    assert ancestry(handled, spans_by_id)[:4] == [
        "process orders.OrderPlaced",
        "run/events.handle",
        "apply_async/events.handle",
        "receive orders.OrderPlaced",
    ]

    # The event the handler published continues the trace from the handler's span, and so does its relay span.
    assert trace_id_of(captured.metadata["traceparent"]) == flow
    assert span_id_of(captured.metadata["traceparent"]) == handled.context.span_id
    next_relayed = next(s for s in finished if s.name == "publish payments.PaymentCaptured")
    assert next_relayed.context.trace_id == flow
    assert ancestry(next_relayed, spans_by_id) == [
        "publish payments.PaymentCaptured",
        "process orders.OrderPlaced",
        "run/events.handle",
        "apply_async/events.handle",
        "receive orders.OrderPlaced",
        "publish orders.OrderPlaced",
        server.name,
    ]


@pytest.mark.django_db
def test_an_event_published_under_an_active_span_carries_that_spans_context(
    spans: InMemorySpanExporter, provider: TracerProvider
) -> None:
    with provider.get_tracer("tests").start_as_current_span("a scheduled job") as span:
        stored = publish(Ping, {"text": "hi"}, version="1.0")
    context = span.get_span_context()
    assert stored.metadata["traceparent"] == f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


@pytest.mark.django_db
def test_off_by_default_no_spans_and_trace_context_still_new_per_flow() -> None:
    assert not telemetry.active()
    assert telemetry.current_traceparent() is None
    first = publish(Ping, {"text": "a"}, version="1.0")
    second = publish(Ping, {"text": "b"}, version="1.0")
    assert trace_id_of(first.metadata["traceparent"]) != trace_id_of(second.metadata["traceparent"])


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "web"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
    ],
)
def test_the_otel_environment_decides_whether_spans_are_exported(environ: dict[str, str], exporters: list[str]) -> None:
    assert telemetry.exporter_names(environ) == exporters


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER names zipkin"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
    ],
)
def test_an_otel_environment_this_project_cannot_serve_is_a_clear_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(telemetry.TelemetryConfigurationError, match=message):
        telemetry.exporter_names(environ)


def test_a_web_process_started_with_otel_variables_traces_its_requests() -> None:
    """project/wsgi.py sets telemetry up before the middleware loads; a request's span reaches the exporter."""
    script = (
        "import sys, project.wsgi as w\n"
        "from django.test import RequestFactory\n"
        "from events import telemetry\n"
        "assert telemetry.active()\n"
        "request = RequestFactory(HTTP_HOST='localhost').get('/api/nowhere')\n"
        "w.application(request.environ, lambda status, headers: None)\n"
        "from opentelemetry import trace\n"
        "trace.get_tracer_provider().force_flush()\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "OTEL_TRACES_EXPORTER": "console", "PYTHONPATH": str(ROOT)}
    env.pop("OTEL_SDK_DISABLED", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"kind": "SpanKind.SERVER"' in done.stdout and "django-services-web" in done.stdout, done.stdout[-2000:]


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_relay_and_prefork_worker_processes_started_with_otel_variables_continue_the_events_trace(
    processes: Any, purge: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay command and a prefork worker (consumer step in its main process, handlers in a child) set
    telemetry up at start and export spans of the event's own trace."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    relay = processes("relay", "manage.py", "relay")
    worker = processes(
        "worker", "-m", "celery", "-A", "project", "worker", "-Q", "testsvc", "-c", "1", "-P", "prefork", "-n", "otel@test"
    )
    stored = publish(Ping, {"text": "traced"}, version="1.0")
    flow = f"0x{trace_id_of(stored.metadata['traceparent']):032x}"
    wait_for(lambda: Notification.objects.filter(event_id=str(stored.event_id), kind="ping-v1").exists(), timeout=120)
    wait_for(lambda: '"name": "process tests.Ping"' in worker.output(), timeout=30, message="the handler's span exported")
    wait_for(lambda: '"name": "publish tests.Ping"' in relay.output(), timeout=30, message="the relay's span exported")
    # The consumer step's span is exported by the worker's main process, on its own schedule.
    wait_for(lambda: '"name": "receive tests.Ping"' in worker.output(), timeout=30, message="the consumer's span exported")
    assert flow in relay.output() and flow in worker.output()
    assert "django-services-relay" in relay.output() and "django-services-worker" in worker.output()
