"""Streams: the event log read and written as the history of one subject (an event-sourced entity).

A stream is the events of one `subject` that carry a `sequence`, in sequence order; the last
sequence is the stream's version (0 for a stream with no events yet).

Guarantees:
- `append` writes events at exactly the positions after `expected_version`, in the caller's
  transaction (through `publish`, so they are also the relay's outbox rows). If another writer got
  there first, the unique (subject, sequence) of the log refuses the row and `append` raises
  `ConcurrencyError`, leaving the caller's transaction usable (the insert ran in a savepoint):
  never a lost update, never a gap or a duplicate position.
- `append_to_end` is for writers whose event does not depend on the stream's state (a fact about
  the entity, recorded by another service): it appends after whatever is there, re-reading the
  version on a conflict.
- `read` returns the stream in sequence order, optionally only the events up to a version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from django.db import IntegrityError, transaction
from django.db.models import Max

from events.models import StoredEvent
from events.registry import EventType


class ConcurrencyError(Exception):
    """Another writer appended to the stream since the caller read it."""

    def __init__(self, subject: str, expected_version: int, actual_version: int) -> None:
        super().__init__(f"stream {subject!r} is at version {actual_version}, not {expected_version} as expected")
        self.subject = subject
        self.expected_version = expected_version
        self.actual_version = actual_version


@dataclass(frozen=True)
class NewEvent:
    event_type: EventType
    data: pydantic.BaseModel | Mapping[str, Any]
    version: str | None = None


def version_of(subject: str) -> int:
    return StoredEvent.objects.filter(subject=subject, sequence__isnull=False).aggregate(v=Max("sequence"))["v"] or 0


def read(subject: str, *, up_to_version: int | None = None) -> list[StoredEvent]:
    rows = StoredEvent.objects.filter(subject=subject, sequence__isnull=False)
    if up_to_version is not None:
        rows = rows.filter(sequence__lte=up_to_version)
    return list(rows.order_by("sequence"))


def append(subject: str, events: Sequence[NewEvent], *, expected_version: int) -> list[StoredEvent]:
    """Append `events` at versions expected_version+1, +2, …; `ConcurrencyError` if those are taken."""
    from events.publishing import publish

    stored: list[StoredEvent] = []
    try:
        with transaction.atomic():
            for offset, event in enumerate(events, start=1):
                stored.append(
                    publish(
                        event.event_type,
                        event.data,
                        version=event.version,
                        subject=subject,
                        sequence=expected_version + offset,
                    )
                )
    except IntegrityError:
        actual = version_of(subject)
        if actual <= expected_version:
            raise  # not a position taken by another writer
        raise ConcurrencyError(subject, expected_version, actual) from None
    return stored


def append_to_end(subject: str, events: Sequence[NewEvent], *, attempts: int = 20) -> list[StoredEvent]:
    """Append after the stream's current end, whatever it is; retried on conflicts."""
    for _ in range(attempts - 1):
        try:
            return append(subject, events, expected_version=version_of(subject))
        except ConcurrencyError:
            continue
    return append(subject, events, expected_version=version_of(subject))
