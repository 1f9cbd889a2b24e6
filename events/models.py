from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db import models
from django.db.models import Q

from events.envelope import Envelope


class StoredEvent(models.Model):
    """One row of the event log: the outbox of the relay and the event store of aggregates.

    Append-only: rows are never updated except for the relay's bookkeeping (`published_at`,
    `rejected_reason`, the lease `claimed_by` / `claimed_until`). (subject, sequence) is unique,
    which gives event-sourced aggregates optimistic concurrency.
    """

    position = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    topic = models.CharField(max_length=100)
    event_type = models.CharField(max_length=100)
    event_version = models.CharField(max_length=20)
    source = models.CharField(max_length=200)
    subject = models.CharField(max_length=200, blank=True, default="")
    sequence = models.PositiveBigIntegerField(null=True, blank=True)
    timestamp = models.DateTimeField()
    data = models.JSONField()
    correlation_id = models.CharField(max_length=100, blank=True, default="")
    causation_id = models.CharField(max_length=100, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    rejected_reason = models.TextField(blank=True, default="")
    # The relay leases rows while their messages are in flight; an expired lease frees them again.
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    # The message body (the envelope as JSON), encoded once by `publish()` in the writer's transaction, so
    # that the relay only moves bytes. Rows written before this column, or around `publish()`, have none:
    # the relay encodes those from the columns above.
    body = models.BinaryField(null=True, blank=True, editable=False)
    # The message's AMQP properties (the content header's flags and property list), encoded with the body, so
    # that the relay sends rows written by `publish()` without reading their columns. None: the relay encodes.
    header = models.BinaryField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["position"]
        verbose_name = "event"
        verbose_name_plural = "events"
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "sequence"],
                condition=Q(sequence__isnull=False),
                name="event_subject_sequence_unique",
            )
        ]
        # Every index is written on each insert and each mark (a mark changes a column of the partial index's
        # condition, so its new row version is never a HOT update): plain b-trees only, for the equality lookups
        # of the admin, the trace view and aggregates (`db_index=True` would add a LIKE index to each text column
        # on PostgreSQL, which nothing here uses).
        indexes = [
            models.Index(
                fields=["position"],
                condition=Q(published_at__isnull=True, rejected_reason=""),
                name="event_unpublished_idx",
            ),
            models.Index(fields=["event_type"], name="event_type_idx"),
            models.Index(fields=["subject"], name="event_subject_idx"),
            models.Index(fields=["timestamp"], name="event_timestamp_idx"),
            models.Index(fields=["correlation_id"], name="event_correlation_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.routing_key} {self.event_id}"

    @property
    def routing_key(self) -> str:
        return f"{self.topic}.{self.event_type}"

    def to_envelope(self) -> Envelope:
        return envelope_of(vars(self))


# The columns an envelope is made of; the relay reads just these, without building model instances.
ENVELOPE_COLUMNS = (
    "position",
    "event_id",
    "topic",
    "event_type",
    "event_version",
    "source",
    "subject",
    "sequence",
    "timestamp",
    "data",
    "correlation_id",
    "causation_id",
    "metadata",
)


def envelope_of(row: Mapping[str, Any]) -> Envelope:
    return Envelope(
        event_type=row["event_type"],
        event_version=row["event_version"],
        timestamp=row["timestamp"],
        event_id=str(row["event_id"]),
        source=row["source"],
        data=row["data"],
        correlation_id=row["correlation_id"] or None,
        causation_id=row["causation_id"] or None,
        subject=row["subject"] or None,
        sequence=row["sequence"],
        traceparent=row["metadata"].get("traceparent"),
    )


class InboxEntry(models.Model):
    """Proof that `handler` has processed the event (`source`, `event_id`), written in the handler's own transaction.

    An event is identified by its source and id together, as CloudEvents makes them unique: two
    producers may both send an event "1".

    Processed means handled, or given up on (`dead_lettered`): a row written with the handler's dead
    letter, so that the event coming back (redelivered, or published twice) does not run again, after
    later events of its subject, say. Replaying the dead letter removes that row.
    """

    source = models.CharField(max_length=200, default="")
    event_id = models.CharField(max_length=200)
    handler = models.CharField(max_length=300)
    event_type = models.CharField(max_length=100, blank=True, default="")
    processed_at = models.DateTimeField(auto_now_add=True)
    # The attempt that succeeded, and how long the handler ran (written once per handler task, for its batch).
    attempt = models.PositiveIntegerField(default=1)
    duration_ms = models.FloatField(null=True, blank=True)
    # With a database default too, so that workers not yet upgraded can go on inserting rows during a deploy.
    dead_lettered = models.BooleanField(default=False, db_default=False)

    class Meta:
        verbose_name = "inbox entry"
        verbose_name_plural = "inbox"
        constraints = [models.UniqueConstraint(fields=["event_id", "source", "handler"], name="inbox_event_handler_unique")]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.handler}{' (dead letter)' if self.dead_lettered else ''}"

    @classmethod
    def of(cls, handler: str, envelope: Envelope, attempt: int, *, dead_lettered: bool = False) -> InboxEntry:
        """The (unsaved) row of `handler` for the event `envelope`."""
        return cls(
            source=envelope.source,
            event_id=envelope.event_id,
            handler=handler,
            event_type=envelope.event_type,
            attempt=attempt,
            dead_lettered=dead_lettered,
        )


class DeadLetter(models.Model):
    """An event that could not be handled, with the reason. Nothing is dropped silently."""

    class Status(models.TextChoices):
        OPEN = "open", "open"
        REPLAYED = "replayed", "replayed"
        ARCHIVED = "archived", "archived"

    class Stage(models.TextChoices):
        CONSUMER = "consumer", "consumer (unreadable or unconvertible)"
        HANDLER = "handler", "handler (retries exhausted)"
        BROKER = "broker", "broker (dead-lettered by RabbitMQ)"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    stage = models.CharField(max_length=20, choices=Stage.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN, db_index=True)
    service = models.CharField(max_length=100, db_index=True)
    handler = models.CharField(max_length=300, blank=True, default="")
    event_id = models.CharField(max_length=200, blank=True, default="", db_index=True)
    source = models.CharField(max_length=200, blank=True, default="")
    event_type = models.CharField(max_length=100, blank=True, default="")
    event_version = models.CharField(max_length=20, blank=True, default="")
    reason = models.TextField()
    traceback = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    envelope = models.JSONField(null=True, blank=True)
    traceparent = models.CharField(max_length=100, blank=True, default="")
    raw_body = models.TextField(blank=True, default="")
    content_type = models.CharField(max_length=200, blank=True, default="")
    headers = models.JSONField(default=dict, blank=True)
    routing_key = models.CharField(max_length=300, blank=True, default="")
    replayed_at = models.DateTimeField(null=True, blank=True)
    # Groups dead letters of one cause: service, handler, stage and the error with its variable parts masked.
    fingerprint = models.CharField(max_length=40, blank=True, default="", db_index=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # However often a failed event comes back (a task delivered twice, say), one open dead letter per handler.
            models.UniqueConstraint(
                fields=["event_id", "source", "handler", "service"],
                condition=Q(stage="handler", status="open"),
                name="deadletter_open_handler_event_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.service} {self.event_type or '?'} {self.event_id or ''}: {self.reason[:60]}"


class HandlerSkips(models.Model):
    """How many events a handler's `max_age` skipped as too old on arrival (counted by the consumer step).

    A skip can be counted twice if a worker dies between counting it and acknowledging its message.
    """

    handler = models.CharField(max_length=300, unique=True)
    service = models.CharField(max_length=100, db_index=True)
    late = models.PositiveBigIntegerField(default=0, help_text="Events older than the handler's max_age on arrival.")
    last_event_id = models.CharField(max_length=200, blank=True, default="")
    last_skipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "late events skipped"
        verbose_name_plural = "late events skipped"
        ordering = ["service", "handler"]

    def __str__(self) -> str:
        return f"{self.handler}: {self.late} late"


class UnfinishedRun(models.Model):
    """A redelivered ordered event whose run has started (`starts` times) and not finished: its worker died meanwhile.

    Written before a redelivered event of `<service>.events.ordered` runs and deleted when it is
    done, so that an event whose handler keeps ending the process is a dead letter after
    `EVENTS_HANDLER_MAX_WORKER_LOSSES` starts, instead of looping.
    """

    queue = models.CharField(max_length=200)
    source = models.CharField(max_length=200, default="")
    event_id = models.CharField(max_length=200)
    starts = models.PositiveIntegerField(default=1)
    first_started_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "event_id", "source"], name="unfinished_run_unique")]

    def __str__(self) -> str:
        return f"{self.queue} {self.event_id}: {self.starts} starts"


class HandlerFailure(models.Model):
    """One failed attempt of a handler on an event, and what became of it (retried or dead-lettered).

    Written once per failed attempt, after the handler's transaction rolled back: the trace view
    shows each retry with its error. Successful attempts leave no row here (their inbox row says it).
    """

    class Outcome(models.TextChoices):
        RETRIED = "retried", "retried"
        DEAD = "dead", "dead-lettered"
        OTHER = "other", "sent again"

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    service = models.CharField(max_length=100)
    handler = models.CharField(max_length=300)
    event_id = models.CharField(max_length=200, db_index=True)
    source = models.CharField(max_length=200, blank=True, default="")
    event_type = models.CharField(max_length=100, blank=True, default="")
    attempt = models.PositiveIntegerField()
    error = models.TextField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices)

    class Meta:
        ordering = ["created_at"]
        verbose_name = "handler failure"

    def __str__(self) -> str:
        return f"{self.handler} on {self.event_id}, attempt {self.attempt}: {self.error[:60]}"


class Trace(StoredEvent):
    """The admin's trace view (no table of its own): one flow of events, by causation."""

    class Meta:
        proxy = True
        verbose_name = "trace"
        verbose_name_plural = "trace: what happened to …"


class FailedMessageGroup(DeadLetter):
    """The admin's failed-message console (no table of its own): open dead letters grouped by cause."""

    class Meta:
        proxy = True
        verbose_name = "failed-message group"
        verbose_name_plural = "failed messages (grouped)"
