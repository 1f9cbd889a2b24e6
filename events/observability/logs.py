"""The event context on every log record, and the JSON format (`LOG_FORMAT=json`).

`EventContextFilter` (on the console handler, see `project/settings.py`) gives every record the
attributes `eventId`, `correlationId`, `service` and `handler`: those of the event being handled
(`events.tracing.current()`) or of the message being read, else those bound for the process or
the task (`bind`), else empty. So every line the bus writes carries them, in either format; the
JSON formatter writes one object per line with them as keys.

Binding is a context variable: the consumer's thread, each handler task and the relay see their
own values.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

_bound: ContextVar[dict[str, str] | None] = ContextVar("events_log_context", default=None)
_process: dict[str, str] = {}

FIELDS = ("eventId", "correlationId", "service", "handler")


def bind(**values: Any) -> Token:
    """Set context for the records that follow in this thread or task (`None` clears a key).

    Returns a token: `reset(token)` restores the context as it was before.
    """
    current = dict(_bound.get() or {})
    for key, value in values.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = str(value)
    return _bound.set(current)


def bind_event(envelope: Any, **values: Any) -> Token:
    """Bind an event's id and correlation id (and any other `values`)."""
    return bind(
        eventId=getattr(envelope, "event_id", None),
        correlationId=getattr(envelope, "correlation_id", None) or getattr(envelope, "event_id", None),
        **values,
    )


def reset(token: Token) -> None:
    try:
        _bound.reset(token)
    except ValueError:  # set in another context: leave the context as it is
        pass


def clear(**values: Any) -> None:
    """Start a fresh context (a new task, a new message), keeping only `values`."""
    _bound.set({key: str(value) for key, value in values.items() if value is not None})


def bind_process(**values: Any) -> None:
    """Defaults for the whole process (the relay: service=relay)."""
    _process.update({key: str(value) for key, value in values.items() if value is not None})


class EventContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from events import tracing

        context = {**_process, **(_bound.get() or {})}
        envelope = tracing.current()
        if envelope is not None:
            context["eventId"] = envelope.event_id
            context["correlationId"] = envelope.correlation_id or envelope.event_id
        for field in FIELDS:
            if not hasattr(record, field):
                setattr(record, field, context.get(field, ""))
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time, level, logger, message, the event context, and the exception if any."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s", *args, **kwargs)
        self.default_msec_format = "%s.%03dZ"
        import time

        self.converter = time.gmtime
