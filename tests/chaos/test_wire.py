"""Faults of the log and of the wire: late commits, rollbacks, unroutable keys, malformed and oversized events, duplicates."""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection, transaction
from kombu import Connection, Producer

from events import publish
from events.models import DeadLetter, InboxEntry, StoredEvent
from notifications.models import Notification
from tests.chaos import load
from tests.chaos.conftest import postgres_only
from tests.chaos.events import Blob, Mark, Stray
from tests.chaos.harness import Stack, assert_clean, drain
from tests.conftest import raw_publish
from tests.support import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]


def test_9_a_transaction_that_took_its_position_early_and_commits_late_is_not_skipped(stack: Stack) -> None:
    postgres_only()  # SQLite has one writer: a position is taken and committed before the next one is taken
    stack.relay()
    stack.worker("all", ["chaos", "accounts", "notifications"])
    taken = threading.Event()
    release = threading.Event()
    late: list[StoredEvent] = []

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                late.append(publish(Mark, {"key": "late", "n": 0}, subject="late", sequence=1))
                taken.set()
                release.wait(60)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_transaction)
    thread.start()
    taken.wait(30)
    load.users(5, prefix="early")
    load.marks(50, prefix="after")
    after = StoredEvent.objects.filter(event_type="Mark").order_by("position")
    wait_for(lambda: after.filter(published_at__isnull=False).count() == 50, timeout=60, message="later events published")
    fault = time.monotonic()
    release.set()
    thread.join(30)
    position = late[0].position
    assert StoredEvent.objects.filter(position__gt=position, published_at__isnull=False).count() >= 50
    figures = drain(stack, "9 position taken early, committed late", since=fault)
    assert_clean(figures)
    assert StoredEvent.objects.get(position=position).published_at is not None
    assert InboxEntry.objects.filter(event_id=str(late[0].event_id)).exists()


def test_10_a_rolled_back_transaction_publishes_nothing(stack: Stack) -> None:
    stack.relay()
    stack.worker("all", ["chaos", "accounts", "notifications"])

    class Abandon(Exception):
        pass

    for i in range(20):
        with pytest.raises(Abandon), transaction.atomic():
            load.users(1, prefix=f"gone{i}-")
            publish(Mark, {"key": f"gone{i}", "n": i}, subject="gone", sequence=i + 1)
            raise Abandon
    fault = time.monotonic()
    load.users(3, prefix="kept")
    figures = drain(stack, "10 rollback", since=fault)
    assert_clean(figures)
    assert figures.events == 3
    assert not Notification.objects.filter(recipient__startswith="gone").exists()
    assert Notification.objects.filter(kind="welcome").count() == 3


def test_11_an_unroutable_key_is_kept_in_events_unrouted(stack: Stack) -> None:
    stack.relay()
    stack.worker("all", ["chaos"])
    with transaction.atomic():
        strays = [publish(Stray, {"key": f"s{i}"}) for i in range(10)]
    load.marks(20)
    fault = time.monotonic()
    figures = drain(stack, "11 unroutable key", since=fault)
    assert_clean(figures)
    with Connection(stack.broker_url) as conn:
        kept = []
        while (message := conn.default_channel.basic_get("events.unrouted", no_ack=True)) is not None:
            kept.append(json.loads(message.body)["eventId"])
    assert sorted(kept) == sorted(str(s.event_id) for s in strays)


class Executed:
    """A pickle that, if anything ever loaded it, would leave a file behind."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.marker,))


def envelope(**overrides: object) -> dict:
    body = {
        "eventType": "Mark",
        "eventVersion": "1.0",
        "timestamp": "2026-01-01T00:00:00Z",
        "eventId": str(uuid.uuid4()),
        "source": "chaos-wire",
        "data": {"key": "wire", "n": 1},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def test_13_malformed_input_on_the_wire_is_dead_lettered_with_its_reason_and_never_executed(stack: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    stack.relay()
    worker = stack.worker("all", ["chaos"])
    bad = {
        "not JSON": (b'{"eventType": "Mark", ', "application/json"),
        "pickle": (pickle.dumps(Executed(marker)), "application/x-python-serialize"),
        "pickle as JSON": (pickle.dumps(Executed(marker)), "application/json"),
        "a JSON array": (b"[1, 2, 3]", "application/json"),
        "missing fields": (json.dumps({"eventType": "Mark", "data": {}}).encode(), "application/json"),
        "unknown type": (json.dumps(envelope(eventType="Nope")).encode(), "application/json"),
        "unknown version": (json.dumps(envelope(eventVersion="9.9")).encode(), "application/json"),
        "data off its schema": (json.dumps(envelope(data={"key": 5})).encode(), "application/json"),
        "timestamp before 1970": (json.dumps(envelope(timestamp="1969-12-31T23:59:59Z")).encode(), "application/json"),
        "naive timestamp": (json.dumps(envelope(timestamp="2026-01-01T00:00:00")).encode(), "application/json"),
        "nested too deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        "not UTF-8": (b'{"eventType": "\xff\xfe"}', "application/json"),
        "NUL in data": (json.dumps(envelope(data={"key": "a\u0000b", "n": 1})).encode(), "application/json"),
        "YAML": (b"eventType: Mark\n", "application/x-yaml"),
    }
    with Connection(stack.broker_url) as conn:
        for body, content_type in bad.values():
            raw_publish(conn, body, "chaos.Mark", content_type=content_type)
        # A task message in pickle, straight onto the chaos task queue.
        Producer(conn.default_channel).publish(
            pickle.dumps(Executed(marker)),
            exchange="tasks",
            routing_key="chaos",
            content_type="application/x-python-serialize",
            content_encoding="binary",
            serializer=None,
            headers={"task": "events.handle", "id": str(uuid.uuid4()), "lang": "py", "argsrepr": "", "kwargsrepr": ""},
        )
    fault = time.monotonic()
    load.marks(20, prefix="good")
    letters = wait_for(
        lambda: (
            list(DeadLetter.objects.filter(service="chaos"))
            if DeadLetter.objects.filter(service="chaos").count() >= len(bad)
            else None
        ),
        timeout=60,
        message="a dead letter for every malformed message",
    )
    figures = drain(stack, "13 malformed input on the wire", since=fault)
    assert_clean(figures)
    assert len(letters) == len(bad)
    assert all(letter.reason and letter.stage == "consumer" and letter.raw_body for letter in letters)
    assert sum("JSON only" in letter.reason for letter in letters) >= 1
    wait_for(
        lambda: "untrusted content" in worker.output() or "ContentDisallowed" in worker.output(),
        timeout=30,
        message="the worker to refuse the pickled task",
    )
    assert not marker.exists(), "a pickle was executed"
    with Connection(stack.broker_url) as conn:
        in_dlq = conn.default_channel.queue_declare("chaos.events.dlq", passive=True).message_count
    assert in_dlq == len(bad)


def test_14_an_oversized_event_is_refused_by_the_relay_kept_and_visible(stack: Stack) -> None:
    stack.env_extra["EVENTS_MAX_MESSAGE_BYTES"] = "20000"
    stack.relay()
    stack.worker("all", ["chaos"])
    with transaction.atomic():
        publish(Blob, {"key": "small-before", "blob": "x" * 100})
        big = publish(Blob, {"key": "big", "blob": "x" * 50_000})
        publish(Blob, {"key": "small-after", "blob": "x" * 100})
    fault = time.monotonic()
    load.marks(20)
    figures = drain(stack, "14 oversized event", since=fault)
    assert_clean(figures)
    big.refresh_from_db()
    assert "exceeds EVENTS_MAX_MESSAGE_BYTES=20000" in big.rejected_reason and big.published_at is None
    assert figures.refused == 1
    assert set(Notification.objects.filter(kind="chaos-blob").values_list("body", flat=True)) == {"small-before", "small-after"}


def test_15_one_event_id_delivered_many_times_has_one_effect(stack: Stack) -> None:
    stack.relay()
    stack.worker("all", load.ALL)
    load.users(1, prefix="once")
    load.payroll(1, prefix="paid-once")
    load.marks(1, prefix="mark-once")
    wait_for(lambda: Notification.objects.count() >= 3, timeout=60, message="the first deliveries")
    fault = time.monotonic()
    with Connection(stack.broker_url) as conn:
        for stored in StoredEvent.objects.all():
            body = stored.to_envelope().to_json()
            for _ in range(25):
                raw_publish(conn, body, stored.routing_key)
    figures = drain(
        stack, "15 one eventId delivered 25 times", since=fault, also=lambda: stack.outcomes()["duplicates"] >= 3 * 25
    )
    assert_clean(figures)
    assert Notification.objects.count() == 3
    assert InboxEntry.objects.count() == 3
    assert figures.redeliveries >= 75


def test_13_malformed_http_input_is_a_4xx_json_answer(client) -> None:  # noqa: ANN001
    """The HTTP side of fault 13: the APIs answer bad bodies with a 4xx JSON reason, never 5xx, and publish nothing."""
    cases = [
        ("/api/users/", b'{"username": ', "application/json", 400),
        ("/api/users/", pickle.dumps({"username": "x"}), "application/x-python-serialize", 415),
        ("/api/users/", b"username=x", "application/x-www-form-urlencoded", 415),
        ("/api/users/", json.dumps({"username": "a b", "email": "nope"}).encode(), "application/json", 422),
        ("/api/users/", json.dumps([1, 2]).encode(), "application/json", 422),
        ("/api/users/", b"{" + b" " * (3 * 1024 * 1024) + b"}", "application/json", 413),
        ("/api/users/", b'{"username": "\xff"}', "application/json", 400),
    ]
    for path, body, content_type, status in cases:
        response = client.post(path, data=body, content_type=content_type)
        assert response.status_code == status, (body[:40], response.status_code, response.content[:200])
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["detail"]
    assert StoredEvent.objects.count() == 0
