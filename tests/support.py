"""Test event types, handlers with controllable behaviour, and bounded polling."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from celery import shared_task

from events import Event, EventSchema, event_type, subscribe
from notifications.models import Notification

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, message: str = "") -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


def read_deliveries(connection: Any, seconds: float = 0.05) -> bool:
    """Let `connection` hand its consumers what the broker delivers within `seconds`; False, so that `wait_for` goes on
    to the condition after it (`wait_for(lambda: read_deliveries(conn) or len(got) == n)`)."""
    try:
        connection.drain_events(timeout=seconds)
    except TimeoutError:
        pass
    return False


class PingV1(EventSchema):
    text: str


class PingV2(EventSchema):
    message: str
    priority: int


Ping = event_type("tests", "Ping", versions={"1.0": PingV1, "2.0": PingV2})


@Ping.upcaster("1.0", "2.0")
def ping_1_0_to_2_0(data: dict[str, Any]) -> dict[str, Any]:
    return {"message": data["text"], "priority": 0}


@Ping.downcaster("2.0", "1.0")
def ping_2_0_to_1_0(data: dict[str, Any]) -> dict[str, Any]:
    return {"text": data["message"]}


class FlakyV1(EventSchema):
    key: str


Flaky = event_type("tests", "Flaky", versions={"1.0": FlakyV1})

# How many times each event key must still fail before it succeeds; -1 fails for ever.
failures_left: Counter[str] = Counter()
calls: Counter[str] = Counter()


def record(kind: str, event: Event[Any], body: str) -> None:
    Notification.objects.create(recipient="", kind=kind, subject=event.envelope.event_type, body=body, event_id=event.id)


@subscribe(Ping, version="1.0", service="testsvc")
def ping_v1_handler(event: Event[PingV1]) -> None:
    record("ping-v1", event, event.data.text)


@subscribe(Ping, version="2.0", service="testsvc")
def ping_v2_handler(event: Event[PingV2]) -> None:
    record("ping-v2", event, f"{event.data.message}/{event.data.priority}")


@subscribe(Flaky, version="1.0", service="testsvc", max_attempts=3)
def flaky_handler(event: Event[FlakyV1]) -> None:
    key = event.data.key
    calls[key] += 1
    if failures_left[key] != 0:
        if failures_left[key] > 0:
            failures_left[key] -= 1
        raise RuntimeError(f"flaky handler refuses {key}")
    record("flaky", event, key)


class ShipmentV1(EventSchema):
    shipmentId: str


class ShipmentV2(EventSchema):
    shipmentId: str
    carrier: str


# Two versions and no converter between them.
Shipment = event_type("tests", "Shipment", versions={"1.0": ShipmentV1, "2.0": ShipmentV2})


@subscribe(Shipment, version="1.0", service="testsvc")
def shipment_v1_handler(event: Event[ShipmentV1]) -> None:
    record("shipment-v1", event, event.data.shipmentId)


@subscribe(Shipment, version="2.0", service="testsvc")
def shipment_v2_handler(event: Event[ShipmentV2]) -> None:
    record("shipment-v2", event, event.data.carrier)


class TickV1(EventSchema):
    n: int


Tick = event_type("tests", "Tick", versions={"1.0": TickV1})


@subscribe(Tick, version="1.0", service="testsvc", max_age=timedelta(minutes=5))
def tick_handler(event: Event[TickV1]) -> None:
    record("tick", event, str(event.data.n))


class SlowV1(EventSchema):
    key: str
    seconds: float = 0.0


Slow = event_type("tests", "Slow", versions={"1.0": SlowV1})
# Keys whose handler raises a database connection error this many more times.
outages_left: Counter[str] = Counter()


@subscribe(Slow, version="1.0", service="testsvc")
def slow_handler(event: Event[SlowV1]) -> None:
    from django.db import OperationalError

    calls[event.data.key] += 1
    if outages_left[event.data.key] > 0:
        from django.db import connection

        outages_left[event.data.key] -= 1
        connection.close()  # as when the server goes away
        raise OperationalError("server closed the connection unexpectedly")
    time.sleep(event.data.seconds)
    record("slow", event, event.data.key)


class OrphanV1(EventSchema):
    note: str


# Declared, but no handler of the test service subscribes to it.
Orphan = event_type("tests", "Orphan", versions={"1.0": OrphanV1})


class TrickyV1(EventSchema):
    key: str
    mode: str = "ok"


Tricky = event_type("tests", "Tricky", versions={"1.0": TrickyV1})


@subscribe(Tricky, version="1.0", service="testsvc", max_attempts=2)
def tricky_handler(event: Event[TrickyV1]) -> None:
    from django.contrib.auth.models import Permission
    from django.db import IntegrityError

    calls[event.data.key] += 1
    record("tricky", event, event.data.key)
    if event.data.mode == "swallow":
        try:
            Permission.objects.create(content_type_id=None, codename="x", name="x")
        except IntegrityError:
            pass  # the mistake: the transaction can no longer commit
    elif event.data.mode == "swallow-raw":
        from django.db import DatabaseError, connection

        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT * FROM no_such_table")  # raw SQL: Django does not mark the transaction
        except DatabaseError:
            pass  # the mistake, again: on PostgreSQL the transaction is aborted
    elif event.data.mode == "dangling-fk":
        Permission.objects.create(content_type_id=999_999, codename=event.data.key, name="dangling")  # fails at commit
    elif event.data.mode == "exit":
        os._exit(1)  # as a segfault or the OOM killer would end the process
    elif event.data.mode == "sysexit":
        raise SystemExit(3)
    elif event.data.mode == "interrupt":
        raise KeyboardInterrupt
    elif event.data.mode in ("after-commit", "after-commit-then-fail"):
        from django.db import transaction

        transaction.on_commit(
            lambda: Notification.objects.create(recipient="", kind="tricky-after-commit", subject="Tricky", body=event.data.key)
        )
        if event.data.mode == "after-commit-then-fail":
            raise ValueError("failed after registering an on_commit callback")
    elif event.data.mode == "soft-limit-once" and calls[event.data.key] == 1:
        from celery.exceptions import SoftTimeLimitExceeded

        raise SoftTimeLimitExceeded()  # as Celery's soft time limit strikes, once


class OutageV1(EventSchema):
    key: str


Outage = event_type("tests", "Outage", versions={"1.0": OutageV1})


@subscribe(Outage, version="1.0", service="testsvc", max_attempts=1)
def outage_handler(event: Event[OutageV1]) -> None:
    """One attempt only: a lost connection counted as an attempt would make a dead letter at once."""
    from django.db import connection

    calls[event.data.key] += 1
    record("outage", event, event.data.key)
    if outages_left[event.data.key] > 0:
        outages_left[event.data.key] -= 1
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # the server ends this very connection


class StepV1(EventSchema):
    n: int
    mode: str = "ok"  # "exit": the handler ends its process
    pause_ms: int = 0


Step = event_type("tests", "Step", versions={"1.0": StepV1})


@subscribe(Step, version="1.0", service="testsvc", ordered=True, max_attempts=3)
def step_handler(event: Event[StepV1]) -> None:
    """Ordered: records "<subject>:<n>" in the order it runs; fails while `failures_left` says so."""
    import random

    key = f"{event.subject}:{event.data.n}"
    calls[key] += 1
    if event.data.mode == "exit":
        os._exit(1)
    if failures_left[key] != 0:
        if failures_left[key] > 0:
            failures_left[key] -= 1
        raise RuntimeError(f"step handler refuses {key}")
    time.sleep(event.data.pause_ms / 1000 + random.random() / 1000)  # and shake the timing of the lanes
    record("step", event, key)


class LateV1(EventSchema):
    n: int


Late = event_type("tests", "Late", versions={"1.0": LateV1})


@subscribe(Late, version="1.0", service="testsvc", ordered=True, max_age=timedelta(minutes=1))
def late_ordered_handler(event: Event[LateV1]) -> None:
    record("late-ordered", event, str(event.data.n))


class TallyV1(EventSchema):
    key: str


Tally = event_type("tests", "Tally", versions={"1.0": TallyV1})


@subscribe(Tally, version="1.0", service="testsvc", batch=True, max_attempts=3)
def tally_batch_handler(events: list[Event[TallyV1]]) -> None:
    """A batch handler: records each call's size, then each event. A list holding an event that `failures_left` says
    must fail is refused; the count goes down only when the event is refused alone."""
    for event in events:
        calls[event.data.key] += 1
    refused = [e for e in events if failures_left[e.data.key] != 0]
    for event in refused:
        if failures_left[event.data.key] > 0 and len(events) == 1:
            failures_left[event.data.key] -= 1
    if refused:
        raise RuntimeError(f"tally refuses {', '.join(e.data.key for e in refused)}")
    Notification.objects.create(recipient="", kind="tally-call", subject="Tally", body=str(len(events)), event_id="")
    for event in events:
        record("tally", event, event.data.key)


class TrailV1(EventSchema):
    n: int


Trail = event_type("tests", "Trail", versions={"1.0": TrailV1})


@subscribe(Trail, version="1.0", service="testsvc", ordered=True, batch=True)
def trail_batch_handler(events: list[Event[TrailV1]]) -> None:
    """An ordered batch handler: records "<subject>:<n>" in the order of its lists."""
    Notification.objects.create(recipient="", kind="trail-call", subject="Trail", body=str(len(events)), event_id="")
    for event in events:
        time.sleep(0.0005)
        record("trail", event, f"{event.subject}:{event.data.n}")


@shared_task(name="tests.pause")
def pause(seconds: float) -> None:
    """Keeps a pool process busy without touching the database."""
    time.sleep(seconds)


def publish_subjects(subjects: int, per_subject: int, first: int = 1) -> None:
    """In one transaction, Ping 1.0 events of the subjects agg-0, agg-1, …, sequences `first` to `first + per_subject - 1`
    (each sequence for every subject before the next)."""
    from django.db import transaction

    from events import publish

    with transaction.atomic():
        for n in range(first, first + per_subject):
            for s in range(subjects):
                publish(Ping, {"text": f"{s}:{n}"}, version="1.0", subject=f"agg-{s}", sequence=n)


def received_sequences(amqp: Any, queue: str = "testsvc.events", *, first_only: bool = False) -> tuple[dict[str, list[int]], int]:
    """Per subject, the sequences of the messages taken from `queue` in the order received (with `first_only`, a message
    published again only the first time), and how many messages there were."""
    import json
    from collections import defaultdict

    seen: dict[str, list[int]] = defaultdict(list)
    total = 0
    while (message := amqp.default_channel.basic_get(queue, no_ack=True)) is not None:
        total += 1
        body = json.loads(message.body)
        if not (first_only and body["sequence"] in seen[body["subject"]]):
            seen[body["subject"]].append(body["sequence"])
    return seen, total


@contextmanager
def another_worker_holding(work: Callable[[], Any], *, commit: bool = True) -> Iterator[list[Any]]:
    """Run `work` in a transaction on a thread and database connection of their own and keep it open; once a statement
    of the block waits on a lock (on the rows `work` wrote), end it: commit, or roll back if not `commit` (PostgreSQL).
    Yields a list that holds what `work` returned."""
    from django.db import connection, transaction

    holding, release = threading.Event(), threading.Event()
    returned: list[Any] = []

    def other_worker() -> None:
        try:
            with transaction.atomic():
                returned.append(work())
                holding.set()
                release.wait(30)
                if not commit:
                    transaction.set_rollback(True)
        finally:
            connection.close()

    def release_once_someone_waits() -> None:
        try:
            wait_for(_someone_waits_on_a_lock, timeout=30, message="a worker waiting on the other's rows")
        finally:
            release.set()
            connection.close()

    other = threading.Thread(target=other_worker)
    other.start()
    releaser = None
    try:
        assert holding.wait(30), "the other worker did not get to hold its transaction"
        releaser = threading.Thread(target=release_once_someone_waits)
        releaser.start()
        yield returned
    finally:
        release.set()
        other.join(30)
        if releaser is not None:
            releaser.join(30)


def _someone_waits_on_a_lock() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
        return cursor.fetchone()[0] > 0
