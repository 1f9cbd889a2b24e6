import pytest

from events import handling, publish, subscriptions
from events.deadletters import NotReplayable, dead_letter_replay
from events.envelope import Envelope
from events.models import DeadLetter, InboxEntry
from notifications.models import Notification
from tests import support
from tests.conftest import basic_get, relay_all
from tests.support import Flaky, Ping, wait_for

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


def test_in_a_batch_a_failing_event_does_not_take_the_others_with_it(worker: object) -> None:
    support.failures_left["bad"] = -1
    subscription = subscriptions.get("tests.support.flaky_handler")
    good, bad = (Envelope(event_type="Flaky", event_version="1.0", data={"key": k}, source="test") for k in ("good", "bad"))

    handling.dispatch(subscription, [handling.item(bad), handling.item(good)])

    wait_for(lambda: DeadLetter.objects.filter(event_id=bad.event_id).exists(), timeout=30)
    assert Notification.objects.filter(kind="flaky", body="good").count() == 1
    assert InboxEntry.objects.filter(event_id=good.event_id).exists()
    assert not InboxEntry.objects.filter(event_id=bad.event_id).exists()


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
    assert not InboxEntry.objects.filter(event_id=bad.event_id).exists()


def test_an_error_found_only_at_commit_isolates_its_event_and_keeps_the_others(worker: object) -> None:
    events = [_tricky("one"), _tricky("fk", "dangling-fk"), _tricky("two")]

    handling.dispatch(subscriptions.get("tests.support.tricky_handler"), [handling.item(e) for e in events])

    dead = wait_for(lambda: DeadLetter.objects.filter(event_id=events[1].event_id).first(), timeout=30)
    assert "IntegrityError" in dead.reason and dead.attempts == 2
    wait_for(lambda: InboxEntry.objects.filter(handler="tests.support.tricky_handler").count() == 2)
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
    assert finished_tasks.count("events.handle") >= 3
    assert all(support.calls[f"s{n}"] == 1 for n in range(6))


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
