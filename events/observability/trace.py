"""One flow of events, as a tree by causation, with what every handler did with each event.

`find(query)` takes an order id, a user (id, username or `user-<id>`), a delivery (`delivery-<id>`)
or any other subject, an eventId or a correlationId, and gathers the flow: the events it names,
every event sharing their correlationIds, and (for a subject) every event of that subject, up to
`LIMIT` events. Each event is placed under the event that caused it (`causationId`).

For each event it tells: its type, version, the service that published it, when it was committed
to the log and when the relay published it; for each handler subscribed to it (or that has a
record of it): when it handled it, how long it took and on which attempt, its failed attempts with
their errors, its dead letters. What is still in flight is marked: committed but not published,
published but not yet handled by a subscribed handler, failed and waiting for a retry.

Reads only; a handful of queries whatever the size of the flow.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import Q

from events import subscriptions
from events.models import DeadLetter, HandlerFailure, InboxEntry, StoredEvent

LIMIT = 500

# States of a handler on an event; those in IN_FLIGHT are not settled yet.
HANDLED = "handled"
DEAD = "dead-lettered"
RETRYING = "retrying"
WAITING = "waiting"
UNPUBLISHED = "not published yet"
SKIPPED = "waiting (or skipped: older than its max age)"
REPLAYED = "replayed, waiting"
ARCHIVED = "dead letter archived"
IN_FLIGHT = {RETRYING, WAITING, UNPUBLISHED, REPLAYED}


@dataclass
class HandlerRun:
    name: str
    service: str
    state: str
    inbox: InboxEntry | None = None
    failures: list[HandlerFailure] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    subscribed: bool = True

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def attempts(self) -> int:
        if self.inbox is not None:
            return self.inbox.attempt
        tried = [f.attempt for f in self.failures] + [d.attempts for d in self.dead_letters]
        return max(tried, default=0)

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT


@dataclass
class Node:
    event: StoredEvent
    service: str
    handlers: list[HandlerRun] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)  # the consumer's or broker's, of no handler
    children: list[Node] = field(default_factory=list)
    cause_outside: bool = False  # caused by an event not in this view

    @property
    def state(self) -> str:
        if self.event.rejected_reason:
            return "rejected by the relay"
        if self.event.published_at is None:
            return "committed, not published"
        return "published"

    @property
    def in_flight(self) -> bool:
        return self.event.published_at is None and not self.event.rejected_reason

    @property
    def problem(self) -> bool:
        return bool(self.event.rejected_reason or self.dead_letters or any(h.state == DEAD for h in self.handlers))


@dataclass
class Trace:
    query: str
    described: str = ""
    roots: list[Node] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    truncated: bool = False

    @property
    def in_flight(self) -> list[str]:
        """One line per thing still in flight."""
        lines = []
        for node in self.nodes:
            name = f"#{node.event.position} {node.event.event_type}"
            if node.in_flight:
                lines.append(f"{name}: committed, not published yet")
            for run in node.handlers:
                if run.in_flight:
                    lines.append(f"{name} → {run.service} {run.short_name}: {run.state}")
        return lines

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return [d for node in self.nodes for d in node.dead_letters + [d for h in node.handlers for d in h.dead_letters]]

    @property
    def failures(self) -> int:
        return sum(len(h.failures) for node in self.nodes for h in node.handlers)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _user_subjects(query: str) -> tuple[Q, str] | None:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    value = query.removeprefix("user-")
    user = User.objects.filter(pk=int(value)).first() if value.isdigit() else None
    user = user or User.objects.filter(username=query).first()
    if user is None:
        return None
    # The user's own events, and the events that carry the user's id (their orders, for one).
    return Q(subject=f"user-{user.pk}") | Q(data__userId=str(user.pk)), f"user {user.get_username()} (id {user.pk})"


def seeds(query: str) -> tuple[list[StoredEvent], str, set[str]]:
    """The events `query` names directly, what it was taken for, and the subjects it named.

    In this order: an eventId or correlationId; a subject (an order id, `user-<id>`,
    `delivery-<id>`); a user by id or username; a delivery by its bare id.
    """
    query = query.strip()
    if not query:
        return [], "", set()
    if _is_uuid(query):
        found = list(StoredEvent.objects.filter(Q(event_id=query) | Q(correlation_id=query))[:LIMIT])
        if found:
            return found, "event or correlation id", set()
    found = [] if query.startswith("user-") else list(StoredEvent.objects.filter(subject=query)[:LIMIT])
    if found:
        return found, f"subject {query}", {query}
    user = _user_subjects(query)
    if user is not None:
        condition, described = user
        return list(StoredEvent.objects.filter(condition).order_by("position")[:LIMIT]), described, set()
    if query.isdigit() and (found := list(StoredEvent.objects.filter(subject=f"delivery-{query}")[:LIMIT])):
        return found, f"delivery {query}", {f"delivery-{query}"}
    found = list(StoredEvent.objects.filter(correlation_id=query)[:LIMIT])
    return found, "correlation id" if found else "", set()


def find(query: str) -> Trace:
    trace = Trace(query=query.strip())
    found, trace.described, subjects = seeds(query)
    if not found:
        return trace
    correlations = {e.correlation_id for e in found if e.correlation_id}
    condition = Q(position__in=[e.position for e in found]) | Q(correlation_id__in=correlations)
    if subjects:
        condition |= Q(subject__in=subjects)
    events = list(StoredEvent.objects.filter(condition).order_by("position")[: LIMIT + 1])
    trace.truncated = len(events) > LIMIT
    events = events[:LIMIT]
    trace.nodes = _nodes(events)
    by_id = {str(node.event.event_id): node for node in trace.nodes}
    for node in trace.nodes:
        parent = by_id.get(node.event.causation_id) if node.event.causation_id else None
        if parent is not None and parent is not node:
            parent.children.append(node)
        else:
            node.cause_outside = bool(node.event.causation_id)
            trace.roots.append(node)
    return trace


def _subscribed(routing_key: str) -> list[subscriptions.Subscription]:
    return [
        s for service in settings.SERVICES for s in subscriptions.for_service(service) if routing_key in s.event_type.routing_keys
    ]


def _publisher(event: StoredEvent) -> str:
    """The service that published `event`: the handler's service when a handler published it (recorded in
    its metadata), else the topic of its type, which names the service that owns it."""
    recorded = (event.metadata or {}).get("service")
    return str(recorded) if recorded else event.topic


def _nodes(events: list[StoredEvent]) -> list[Node]:
    ids = [str(e.event_id) for e in events]
    inbox: dict[tuple[str, str], list[InboxEntry]] = {}
    for entry in InboxEntry.objects.filter(event_id__in=ids, dead_lettered=False):  # a given-up one: its dead letter says
        inbox.setdefault((entry.source, entry.event_id), []).append(entry)
    failures: dict[tuple[str, str], list[HandlerFailure]] = {}
    for failure in HandlerFailure.objects.filter(event_id__in=ids).order_by("created_at", "id"):
        failures.setdefault((failure.source, failure.event_id), []).append(failure)
    letters: dict[str, list[DeadLetter]] = {}
    for letter in DeadLetter.objects.filter(event_id__in=ids).order_by("created_at", "id"):
        letters.setdefault(letter.event_id, []).append(letter)
    now = datetime.now(UTC)
    nodes = []
    for event in events:
        key = (event.source, str(event.event_id))
        event_inbox = {entry.handler: entry for entry in inbox.get(key, [])}
        event_failures = failures.get(key, [])
        event_letters = [d for d in letters.get(str(event.event_id), []) if not d.source or d.source == event.source]
        subscribed = {s.name: s for s in _subscribed(event.routing_key)}
        names = sorted(
            subscribed.keys()
            | event_inbox.keys()
            | {f.handler for f in event_failures}
            | {d.handler for d in event_letters if d.handler}
        )
        node = Node(event=event, service=_publisher(event))
        node.dead_letters = [d for d in event_letters if not d.handler]
        for name in names:
            subscription = subscribed.get(name)
            run = HandlerRun(
                name=name,
                service=subscription.service if subscription else _service_of(name, event_failures, event_letters),
                state=WAITING,
                inbox=event_inbox.get(name),
                failures=[f for f in event_failures if f.handler == name],
                dead_letters=[d for d in event_letters if d.handler == name],
                subscribed=subscription is not None,
            )
            run.state = _state(event, run, subscription, now)
            node.handlers.append(run)
        nodes.append(node)
    return nodes


def _service_of(handler: str, failures: list[HandlerFailure], letters: list[DeadLetter]) -> str:
    for record in [*failures, *letters]:
        if record.handler == handler and record.service:
            return record.service
    return "?"


def _state(event: StoredEvent, run: HandlerRun, subscription: Any, now: datetime) -> str:
    if run.inbox is not None:
        return HANDLED
    statuses = {d.status for d in run.dead_letters}
    if DeadLetter.Status.OPEN in statuses:
        return DEAD
    if DeadLetter.Status.REPLAYED in statuses:
        return REPLAYED
    if DeadLetter.Status.ARCHIVED in statuses:
        return ARCHIVED
    if event.published_at is None:
        return UNPUBLISHED
    if run.failures:
        return RETRYING
    max_age = getattr(subscription, "max_age", None)
    if max_age is not None and (now - event.timestamp) > max_age:
        return SKIPPED
    return WAITING
