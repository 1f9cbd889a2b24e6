from typing import Any

import pytest
from django.db import connection, transaction
from kombu import Connection

from events import deadletters, handling, publish, subscriptions
from events.deadletters import NotReplayable, dead_letter_replay
from events.envelope import Envelope
from events.models import DeadLetter, InboxEntry
from notifications.models import Notification
from tests import support
from tests.conftest import basic_get, relay_all
from tests.support import Flaky, Ping, Tricky, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_duplicate_delivery_has_one_effect(worker: object, finished_tasks: list[str]) -> None:
    envelope = Envelope(event_type="Ping", event_version="1.0", data={"text": "once"}, source="test")
    subscription = subscriptions.get("tests.support.ping_v1_handler")

    handling.dispatch(subscription, [handling.item(envelope)])
    handling.dispatch(subscription, [handling.item(envelope), handling.item(envelope)])

    wait_for(lambda: finished_tasks.count("events.handle") == 2, message="both deliveries to be handled")
    assert Notification.objects.filter(kind="ping-v1", body="once").count() == 1
    assert InboxEntry.objects.filter(event_id=envelope.event_id).count() == 1


def test_the_same_event_published_twice_is_handled_once(worker: object, finished_tasks: list[str]) -> None:
    stored = publish(Ping, {"text": "republished"}, version="1.0")
    relay_all()
    wait_for(lambda: finished_tasks.count("events.handle") == 2)  # the v1 and the v2 handler
    type(stored).objects.filter(pk=stored.pk).update(published_at=None)  # as after a relay crash
    relay_all()

    wait_for(lambda: finished_tasks.count("events.handle") == 4, message="the republished event to be handled")
    assert Notification.objects.filter(body__startswith="republished").count() == 2
    assert InboxEntry.objects.filter(event_id=str(stored.event_id)).count() == 2


def test_a_handler_that_fails_twice_then_succeeds_runs_its_effect_once(worker: object) -> None:
    support.failures_left["twice"] = 2
    publish(Flaky, {"key": "twice"})
    relay_all()

    wait_for(lambda: Notification.objects.filter(kind="flaky", body="twice").exists(), timeout=30)
    assert support.calls["twice"] == 3
    assert not DeadLetter.objects.exists()


def test_a_handler_that_always_fails_ends_as_a_dead_letter_and_replays_after_a_fix(worker: object, amqp: object) -> None:
    support.failures_left["broken"] = -1
    stored = publish(Flaky, {"key": "broken"})
    relay_all()

    dead = wait_for(lambda: DeadLetter.objects.filter(event_id=str(stored.event_id)).first(), timeout=30)
    assert dead.stage == DeadLetter.Stage.HANDLER
    assert dead.handler == "tests.support.flaky_handler"
    assert dead.attempts == 3 == support.calls["broken"]
    assert dead.reason == "RuntimeError: flaky handler refuses broken"
    assert "Traceback" in dead.traceback and "flaky_handler" in dead.traceback
    dlq = wait_for(lambda: basic_get(amqp, "testsvc.events.dlq"), timeout=5)
    assert dlq.headers["x-reason"] == dead.reason
    assert not Notification.objects.filter(kind="flaky").exists()

    support.failures_left["broken"] = 0  # the fix
    dead_letter_replay(dead_letter=dead)

    wait_for(lambda: Notification.objects.filter(kind="flaky", body="broken").exists(), timeout=30)
    dead.refresh_from_db()
    assert dead.status == DeadLetter.Status.REPLAYED and dead.replayed_at is not None


def test_a_given_up_event_that_comes_again_does_not_run_until_its_dead_letter_is_replayed(
    worker: object, finished_tasks: list[str]
) -> None:
    support.failures_left["given up"] = -1
    stored = publish(Flaky, {"key": "given up"})
    relay_all()
    dead = wait_for(lambda: DeadLetter.objects.filter(event_id=str(stored.event_id)).first(), timeout=30)
    marker = InboxEntry.objects.get(event_id=str(stored.event_id))
    assert marker.dead_lettered and marker.attempt == 3 and marker.handler == "tests.support.flaky_handler"
    runs = finished_tasks.count("events.handle")

    type(stored).objects.filter(pk=stored.pk).update(published_at=None)  # published again, as after a relay crash
    relay_all()

    wait_for(lambda: finished_tasks.count("events.handle") == runs + 1, message="the second copy to be taken")
    assert support.calls["given up"] == 3, "the handler ran again on an event it had given up on"
    assert DeadLetter.objects.get().pk == dead.pk

    support.failures_left["given up"] = 0
    dead_letter_replay(dead_letter=dead)

    wait_for(lambda: Notification.objects.filter(kind="flaky", body="given up").exists(), timeout=30)
    entry = InboxEntry.objects.get(event_id=str(stored.event_id))
    assert not entry.dead_lettered and entry.attempt == 1
    assert DeadLetter.objects.get().status == DeadLetter.Status.REPLAYED
    with pytest.raises(NotReplayable, match="replayed already"):  # twice would remove a newer dead letter's row
        dead_letter_replay(dead_letter=dead)


def test_a_dead_letter_that_cannot_be_sent_again_stays_open_and_given_up(
    worker: object, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.failures_left["unsent"] = -1
    stored = publish(Flaky, {"key": "unsent"})
    relay_all()
    dead = wait_for(lambda: DeadLetter.objects.filter(event_id=str(stored.event_id)).first(), timeout=30)

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("the broker is down")

    monkeypatch.setattr(handling, "dispatch", broker_down)
    with pytest.raises(ConnectionRefusedError):
        dead_letter_replay(dead_letter=dead)

    dead.refresh_from_db()
    assert dead.status == DeadLetter.Status.OPEN and dead.replayed_at is None
    assert InboxEntry.objects.get(event_id=str(stored.event_id)).dead_lettered


def test_in_a_batch_a_failing_event_does_not_take_the_others_with_it(worker: object) -> None:
    support.failures_left["bad"] = -1
    subscription = subscriptions.get("tests.support.flaky_handler")
    good, bad = (Envelope(event_type="Flaky", event_version="1.0", data={"key": k}, source="test") for k in ("good", "bad"))

    handling.dispatch(subscription, [handling.item(bad), handling.item(good)])

    wait_for(lambda: DeadLetter.objects.filter(event_id=bad.event_id).exists(), timeout=30)
    assert Notification.objects.filter(kind="flaky", body="good").count() == 1
    assert not InboxEntry.objects.get(event_id=good.event_id).dead_lettered
    assert InboxEntry.objects.get(event_id=bad.event_id).dead_lettered  # given up on, not handled


def test_a_batch_hit_by_a_database_outage_is_delivered_again_without_losing_or_doubling_anything(worker: object) -> None:
    support.outages_left["b"] = 1
    subscription = subscriptions.get("tests.support.slow_handler")
    events = [Envelope(event_type="Slow", event_version="1.0", data={"key": k}, source="test") for k in "abc"]

    handling.dispatch(subscription, [handling.item(e) for e in events])

    wait_for(lambda: Notification.objects.filter(kind="slow").count() == 3, timeout=30)
    assert sorted(Notification.objects.filter(kind="slow").values_list("body", flat=True)) == ["a", "b", "c"]
    assert support.calls["a"] == 2  # its first run was rolled back with the batch
    assert support.calls["b"] == 2
    assert not DeadLetter.objects.exists()


def _tricky(key: str, mode: str = "ok") -> Envelope:
    return Envelope(event_type="Tricky", event_version="1.0", data={"key": key, "mode": mode}, source="test")


def test_a_handler_that_swallows_a_database_error_fails_instead_of_counting_as_handled(worker: object) -> None:
    bad, good = _tricky("swallow", "swallow"), _tricky("fine")

    handling.dispatch(subscriptions.get("tests.support.tricky_handler"), [handling.item(bad), handling.item(good)])

    dead = wait_for(lambda: DeadLetter.objects.filter(event_id=bad.event_id).first(), timeout=30)
    assert "swallowed a database error" in dead.reason and dead.attempts == 2
    assert list(Notification.objects.filter(kind="tricky").values_list("body", flat=True)) == ["fine"]
    assert InboxEntry.objects.get(event_id=bad.event_id).dead_lettered  # given up, never counted as handled


@pytest.mark.skipif(connection.vendor != "postgresql", reason="an error does not abort a transaction on SQLite")
def test_a_database_error_swallowed_by_the_last_event_of_a_batch_fails_that_event_and_keeps_the_others(
    worker: object,
) -> None:
    """Raw SQL that fails aborts the transaction without Django knowing; the event's savepoint finds it (its release
    fails), so that event fails alone, and the batch's commit is not silently turned into a rollback."""
    events = [_tricky("first"), _tricky("second"), _tricky("raw", "swallow-raw")]

    handling.dispatch(subscriptions.get("tests.support.tricky_handler"), [handling.item(e) for e in events])

    dead = wait_for(lambda: DeadLetter.objects.filter(event_id=events[2].event_id).first(), timeout=30)
    assert dead.attempts == 2
    handled = InboxEntry.objects.filter(handler="tests.support.tricky_handler", dead_lettered=False)
    assert sorted(handled.values_list("event_id", flat=True)) == sorted(e.event_id for e in events[:2])
    assert sorted(Notification.objects.filter(kind="tricky").values_list("body", flat=True)) == ["first", "second"]


def test_an_error_found_only_at_commit_isolates_its_event_and_keeps_the_others(worker: object) -> None:
    events = [_tricky("one"), _tricky("fk", "dangling-fk"), _tricky("two")]

    handling.dispatch(subscriptions.get("tests.support.tricky_handler"), [handling.item(e) for e in events])

    dead = wait_for(lambda: DeadLetter.objects.filter(event_id=events[1].event_id).first(), timeout=30)
    assert "IntegrityError" in dead.reason and dead.attempts == 2
    wait_for(lambda: InboxEntry.objects.filter(handler="tests.support.tricky_handler", dead_lettered=False).count() == 2)
    assert sorted(Notification.objects.filter(kind="tricky").values_list("body", flat=True)) == ["one", "two"]


def test_a_batch_that_outlasts_its_time_budget_hands_the_rest_on(
    worker: object, settings: object, finished_tasks: list[str]
) -> None:
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 0.4  # a budget of 0.1 s per task
    subscription = subscriptions.get("tests.support.slow_handler")
    events = [
        Envelope(event_type="Slow", event_version="1.0", data={"key": f"s{n}", "seconds": 0.06}, source="t") for n in range(6)
    ]

    handling.dispatch(subscription, [handling.item(e) for e in events])

    wait_for(lambda: Notification.objects.filter(kind="slow").count() == 6, timeout=30)
    # A task's notifications commit inside it, before `task_postrun` counts it finished: wait for the count too.
    wait_for(lambda: finished_tasks.count("events.handle") >= 3, timeout=10, message="three handler tasks to finish")
    assert all(support.calls[f"s{n}"] == 1 for n in range(6))


def test_a_tasks_inbox_rows_follow_the_order_its_events_ran_in(worker: object) -> None:
    """The inbox's ids are the order of handling (what the fault suite and the ordered bench judge order by)."""
    events = [_tricky(f"k{n}") for n in range(10)]

    handling.dispatch(subscriptions.get("tests.support.tricky_handler"), [handling.item(e) for e in events])

    wait_for(lambda: InboxEntry.objects.count() == 10, timeout=30, message="10 events handled")
    assert list(InboxEntry.objects.order_by("id").values_list("event_id", flat=True)) == [e.event_id for e in events]
    assert list(Notification.objects.order_by("id").values_list("body", flat=True)) == [f"k{n}" for n in range(10)]


def test_the_on_commit_callbacks_of_an_event_that_failed_in_a_batch_never_run(worker: object) -> None:
    """Each event of a task runs in a savepoint of its own: what a failed one registered with `on_commit` is dropped
    with its work, at every attempt, and the callbacks of the events around it run once their task commits."""
    events = [
        _tricky("before", "after-commit"),
        _tricky("failing", "after-commit-then-fail"),
        _tricky("after", "after-commit"),
        _tricky("plain"),
    ]

    handling.dispatch(subscriptions.get("tests.support.tricky_handler"), [handling.item(e) for e in events])

    dead = wait_for(lambda: DeadLetter.objects.filter(event_id=events[1].event_id).first(), timeout=30)
    assert dead.attempts == 2 and support.calls["failing"] == 2
    wait_for(lambda: Notification.objects.filter(kind="tricky-after-commit").count() == 2, message="two callbacks")
    assert sorted(Notification.objects.filter(kind="tricky-after-commit").values_list("body", flat=True)) == ["after", "before"]
    assert sorted(Notification.objects.filter(kind="tricky").values_list("body", flat=True)) == ["after", "before", "plain"]
    handled = InboxEntry.objects.filter(handler="tests.support.tricky_handler", dead_lettered=False)
    assert sorted(handled.values_list("event_id", flat=True)) == sorted(e.event_id for e in (events[0], events[2], events[3]))


def test_the_soft_time_limit_striking_mid_batch_loses_nothing_and_doubles_nothing(worker: object) -> None:
    subscription = subscriptions.get("tests.support.tricky_handler")
    events = [_tricky("a"), _tricky("b", "soft-limit-once"), _tricky("c")]

    handling.dispatch(subscription, [handling.item(e) for e in events])

    wait_for(lambda: Notification.objects.filter(kind="tricky").count() == 3, timeout=30, message="a, b and c handled")
    assert sorted(Notification.objects.filter(kind="tricky").values_list("body", flat=True)) == ["a", "b", "c"]
    assert not InboxEntry.objects.filter(dead_lettered=True).exists() and not DeadLetter.objects.exists()
    assert support.calls["b"] == 2


@pytest.mark.django_db
def test_a_dead_letter_without_a_handler_cannot_be_replayed() -> None:
    dead = DeadLetter.objects.create(stage=DeadLetter.Stage.CONSUMER, service="testsvc", reason="body is not valid JSON")

    with pytest.raises(NotReplayable, match="keeps neither a handler"):
        dead_letter_replay(dead_letter=dead)


def test_backoff_grows_exponentially_with_jitter_and_is_capped(settings: object) -> None:
    settings.EVENTS_RETRY_BACKOFF_SECONDS = 2.0
    settings.EVENTS_RETRY_BACKOFF_MAX_SECONDS = 600.0

    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (12, 600.0)]:
        delays = [handling.backoff_seconds(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_an_event_a_task_cannot_read_is_a_dead_letter_and_the_rest_of_the_task_is_handled(worker: object) -> None:
    good = [_tricky(f"readable {n}") for n in range(3)]
    unreadable = [
        {
            **handling.item(_tricky("year 999")),
            "event": {**good[0].to_dict(), "eventId": "year-999", "timestamp": "0999-01-01T00:00:00Z"},
        },
        {**handling.item(_tricky("no event")), "event": None},
        "not even an object",
    ]

    handling._send(
        "tests.support.tricky_handler", "testsvc", [handling.item(good[0]), *unreadable, *map(handling.item, good[1:])]
    )

    wait_for(lambda: Notification.objects.filter(kind="tricky").count() == 3)
    dead = wait_for(lambda: list(DeadLetter.objects.order_by("id")) if DeadLetter.objects.count() == 3 else None)
    assert all(d.reason.startswith("the handler task cannot read this event") for d in dead)
    assert dead[0].event_id == "year-999" and "before 1970" in dead[0].reason
    assert all(d.handler == "tests.support.tricky_handler" and d.raw_body for d in dead)


def test_a_dead_letter_is_stored_once_however_often_its_event_comes_back(amqp: Connection, purge: None) -> None:
    envelope = _tricky("twice dead")

    for attempts in (2, 3):
        deadletters.record_handler_failure(
            service="testsvc", handler="tests.support.tricky_handler", envelope=envelope, reason="boom", tb="", attempts=attempts
        )

    dead = DeadLetter.objects.get()
    assert dead.attempts == 3
    assert basic_get(amqp, "testsvc.events.dlq") is not None and basic_get(amqp, "testsvc.events.dlq") is None
    DeadLetter.objects.update(status=DeadLetter.Status.REPLAYED)  # replayed, then it fails again
    deadletters.record_handler_failure(
        service="testsvc", handler="tests.support.tricky_handler", envelope=envelope, reason="boom", tb="", attempts=1
    )
    assert DeadLetter.objects.filter(status=DeadLetter.Status.OPEN).count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates PostgreSQL backends")
def test_connections_terminated_mid_batch_spend_no_attempts(worker: object) -> None:
    keys = [f"o{n}" for n in range(12)]
    support.outages_left.update({"o3": 2, "o8": 1})
    events = [Envelope(event_type="Outage", event_version="1.0", data={"key": k}, source="t") for k in keys]

    handling.dispatch(subscriptions.get("tests.support.outage_handler"), [handling.item(e) for e in events])

    # One attempt each: had a lost connection counted as an attempt, o3 and o8 would be dead letters.
    wait_for(lambda: Notification.objects.filter(kind="outage").count() == 12, timeout=60)
    assert not DeadLetter.objects.exists()
    assert sorted(Notification.objects.filter(kind="outage").values_list("body", flat=True)) == sorted(keys)
    # Each outage rolls the whole batch back, so an event runs again after any outage in its batch.
    assert support.calls["o3"] >= 3 and support.calls["o8"] >= 2


def test_a_handler_that_kills_its_worker_becomes_a_dead_letter_and_its_batch_is_handled(
    processes: Any, purge: None, amqp: Connection
) -> None:
    processes("worker", "-m", "celery", "-A", "project", "worker", "-Q", "testsvc", "-c", "2", "-n", "poison@test", "-l", "INFO")
    healthy = [f"healthy {n}" for n in range(20)]
    poison = {"exit": None, "sysexit": None, "interrupt": None}
    with transaction.atomic():
        for n, key in enumerate(healthy):
            publish(Tricky, {"key": key})
            if n % 7 == 3:
                mode = list(poison)[n // 7]
                poison[mode] = str(publish(Tricky, {"key": f"poison {mode}", "mode": mode}).event_id)
    relay_all()

    wait_for(lambda: Notification.objects.filter(kind="tricky").count() == 20, timeout=120, message="the healthy events")
    dead = wait_for(lambda: list(DeadLetter.objects.all()) if DeadLetter.objects.count() == 3 else None, timeout=120)
    assert {d.event_id for d in dead} == set(poison.values())
    assert all(d.stage == DeadLetter.Stage.HANDLER and "worker handling it died" in d.reason for d in dead)
    assert sorted(Notification.objects.values_list("body", flat=True)) == sorted(healthy)
    copies: list[Any] = []
    # A dead letter's row is written before its copy is published to the DLQ: wait for the copies.
    wait_for(lambda: (copies.append(m) if (m := basic_get(amqp, "testsvc.events.dlq")) else None) or len(copies) == 3, timeout=20)
    assert {m.properties["message_id"] for m in copies} == set(poison.values())

    publish(Tricky, {"key": "after"})  # the queue moves on
    relay_all()
    wait_for(lambda: Notification.objects.filter(body="after").exists(), timeout=30)
    assert DeadLetter.objects.count() == 3


def test_failed_events_with_the_same_id_from_two_sources_are_two_dead_letters(worker: object) -> None:
    support.failures_left.update({"from a": -1, "from b": -1})
    events = [
        Envelope(event_type="Flaky", event_version="1.0", data={"key": f"from {s}"}, source=f"/producer-{s}", event_id="7")
        for s in "ab"
    ]

    handling.dispatch(subscriptions.get("tests.support.flaky_handler"), [handling.item(e) for e in events])

    dead = wait_for(lambda: list(DeadLetter.objects.order_by("source")) if DeadLetter.objects.count() == 2 else None, timeout=30)
    assert [(d.source, d.envelope["data"]["key"]) for d in dead] == [("/producer-a", "from a"), ("/producer-b", "from b")]


def test_a_dead_letter_is_stored_whatever_text_its_event_holds(amqp: Connection, purge: None) -> None:
    envelope = Envelope(event_type="Tricky", event_version="1.0", data={"key": "nul\x00", "mode": "lone \udcff"}, source="t")

    dead = deadletters.record_handler_failure(
        service="testsvc", handler="tests.support.tricky_handler", envelope=envelope, reason="bad \x00 text", tb="", attempts=1
    )

    dead.refresh_from_db()
    assert dead.envelope["data"] == {"key": "nul\\u0000", "mode": "lone \\udcff"}
    assert dead.reason == "bad \\u0000 text"
    unreadable = deadletters.record_unreadable(
        service="testsvc", reason="x", body=b"a\x00b", content_type="text/" + "x" * 300, headers={"h": "\x00"}, routing_key="k"
    )
    unreadable.refresh_from_db()
    assert unreadable.raw_body.startswith("base64:") and len(unreadable.content_type) == 200


def test_a_task_that_comes_back_after_its_events_were_handled_changes_nothing(
    worker: Any, amqp: Connection, finished_tasks: list[str], broker_url: str
) -> None:
    from project.celery import app

    envelope = _tricky("handled before the blip")
    handling.dispatch(subscriptions.get("tests.support.tricky_handler"), [handling.item(envelope)])
    wait_for(lambda: InboxEntry.objects.filter(event_id=envelope.event_id).exists())
    done = finished_tasks.count("events.handle")

    # The same task again, taken and given back unacked as a broker connection blip would: it comes back redelivered,
    # counted as unfinished the maximum number of times minus one.
    app.control.cancel_consumer("testsvc", destination=[worker.hostname], reply=True, timeout=5)
    wait_for(lambda: amqp.default_channel.queue_declare("testsvc", passive=True).consumer_count == 0)
    lost = {**handling.item(envelope), "lost": 2}
    handling._send("tests.support.tricky_handler", "testsvc", [lost])
    with Connection(broker_url) as blip:
        channel = blip.channel()
        assert channel.basic_get("testsvc", no_ack=False) is not None
    app.control.add_consumer("testsvc", destination=[worker.hostname], reply=True, timeout=5)

    wait_for(lambda: finished_tasks.count("events.handle") == done + 1)
    assert not DeadLetter.objects.exists()
    assert Notification.objects.filter(kind="tricky").count() == 1


def test_a_worker_thread_checks_its_connection_at_most_once_a_second_unless_an_error_occurred(monkeypatch: Any) -> None:
    checks: list[int] = []
    monkeypatch.setattr(handling, "close_old_connections", lambda: checks.append(1))
    monkeypatch.setattr(handling, "CONNECTION_CHECK_SECONDS", 3600.0)
    monkeypatch.setattr(handling, "_checked", handling.threading.local())
    connection.ensure_connection()
    monkeypatch.setattr(connection, "close_at", None)  # CONN_MAX_AGE=None: kept for ever

    handling.refresh_connections()
    handling.refresh_connections()
    assert len(checks) == 1  # the first time, then not for an hour

    connection.errors_occurred = True
    try:
        handling.refresh_connections()
    finally:
        connection.errors_occurred = False
    assert len(checks) == 2  # after an error, at once


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ends a PostgreSQL backend")
def test_a_connection_the_database_ended_is_replaced_after_the_error_within_the_second() -> None:
    from django.db import OperationalError, connections

    connection.ensure_connection()
    handling.refresh_connections()  # checked now: the next check is a second away
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    with pytest.raises(OperationalError), connection.cursor() as cursor:
        cursor.execute("SELECT 1")

    handling.refresh_connections()

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_with_conn_max_age_0_a_worker_thread_closes_its_connection_after_every_task() -> None:
    # The suite's setting (conftest.py), and what a deployment behind a transaction pooler may choose.
    assert connection.settings_dict["CONN_MAX_AGE"] == 0
    handling.refresh_connections()  # checked now: the next check is a second away
    connection.ensure_connection()
    assert connection.connection is not None

    handling.refresh_connections()

    assert connection.connection is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the inbox row is claimed without a savepoint on PostgreSQL")
@pytest.mark.parametrize("other_commits", [True, False])
def test_an_event_another_worker_is_handling_waits_for_its_outcome(other_commits: bool) -> None:
    envelope = Envelope(event_type="Ping", event_version="1.0", data={"text": "contended"}, source="test")
    subscription = subscriptions.get("tests.support.ping_v1_handler")

    with support.another_worker_holding(lambda: handling.run_once(subscription, envelope), commit=other_commits) as other:
        with transaction.atomic():
            ran = handling.run_once(subscription, envelope)

    assert other == [True]  # the other worker ran it first
    assert ran is not other_commits  # left to the other worker if it committed, run here if it rolled back
    assert Notification.objects.filter(kind="ping-v1", body="contended").count() == 1
    assert InboxEntry.objects.filter(event_id=envelope.event_id).count() == 1
