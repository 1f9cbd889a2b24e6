"""Causality and trace context of the event being handled.

While a handler runs, `handling(envelope)` makes that event current: every event published in
the meantime gets its `correlationId` and `causationId` (= the current eventId), and a W3C
`traceparent` that continues the same trace with a new span. When a span is active (OpenTelemetry
is on, see events/telemetry.py) the traceparent is that span's context, whether the event is
published from a request, a task or a handler: the flow stays one trace.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from events import telemetry
from events.envelope import TRACEPARENT, Envelope

_current: ContextVar[Envelope | None] = ContextVar("events_current", default=None)


@dataclass(frozen=True)
class Context:
    correlation_id: str
    causation_id: str | None
    traceparent: str


def current() -> Envelope | None:
    return _current.get()


@contextmanager
def handling(envelope: Envelope) -> Iterator[None]:
    token = _current.set(envelope)
    try:
        yield
    finally:
        _current.reset(token)


def child_traceparent(parent: str | None) -> str:
    match = TRACEPARENT.match(parent or "")
    trace_id = match.group(1) if match else secrets.token_hex(16)
    flags = match.group(3) if match else "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def next_context(correlation_id: str | None = None) -> Context:
    """The metadata for a new event: caused by the current one if there is one."""
    cause = current()
    active = telemetry.current_traceparent()
    if cause is not None:
        return Context(
            correlation_id=correlation_id or cause.correlation_id or cause.event_id,
            causation_id=cause.event_id,
            traceparent=active or child_traceparent(cause.traceparent),
        )
    return Context(
        correlation_id=correlation_id or str(uuid.uuid4()),
        causation_id=None,
        traceparent=active or child_traceparent(None),
    )
