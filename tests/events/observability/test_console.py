"""The failed-message console: grouping by cause, retry and archive of a group, in the admin and from the command."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from events import deadletters
from events.envelope import Envelope
from events.models import DeadLetter, InboxEntry
from events.observability import console
from notifications.models import Notification
from tests.conftest import in_process_worker
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FLAKY = "tests.support.flaky_handler"


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(user)
    return client


def flaky(key: str) -> Envelope:
    from datetime import UTC, datetime

    return Envelope(
        event_type="Flaky",
        event_version="1.0",
        timestamp=datetime.now(UTC),
        event_id=f"id-{key}",
        source="tests",
        data={"key": key},
    )


def dead(key: str, reason: str, handler: str = FLAKY) -> DeadLetter:
    # As the handler task stores it; the DLQ copy goes to the broker of the test run.
    return deadletters.record_handler_failure(
        service="testsvc", handler=handler, envelope=flaky(key), reason=reason, tb="", attempts=3
    )


def test_errors_differing_only_in_ids_and_numbers_are_one_group() -> None:
    assert console.signature("RuntimeError: card 4242 declined for ORD-1a2b3c, 'ada'") == console.signature(
        "RuntimeError: card 1111 declined for ORD-9z8y7x, 'bob'"
    )
    assert console.signature("RuntimeError: card declined") != console.signature("ValueError: card declined")
    kwargs = {"service": "s", "handler": "h", "stage": "handler"}
    assert console.fingerprint(**kwargs, reason="KeyError: 'a'") == console.fingerprint(**kwargs, reason="KeyError: 'b'")
    assert console.fingerprint(**kwargs, reason="x") != console.fingerprint(**{**kwargs, "handler": "g"}, reason="x")


def test_groups_count_first_and_last_seen(purge: None) -> None:
    first = dead("job-0001", "RuntimeError: flaky handler refuses job-0001")
    dead("job-0002", "RuntimeError: flaky handler refuses job-0002")
    last = dead("job-0003", "RuntimeError: flaky handler refuses job-0003")
    other = dead("job-0004", "ValueError: bad")

    groups = {g.fingerprint: g for g in console.groups()}

    assert set(groups) == {first.fingerprint, other.fingerprint}
    refuses = groups[first.fingerprint]
    assert (refuses.count, refuses.service, refuses.handler, refuses.stage) == (3, "testsvc", FLAKY, "handler")
    assert refuses.first_seen == first.created_at and refuses.last_seen == last.created_at
    assert refuses.event_types == ["Flaky"] and refuses.example == "RuntimeError: flaky handler refuses job-0003"
    assert groups[other.fingerprint].count == 1


def test_retrying_a_group_from_the_admin_hands_each_event_to_its_handler_again(staff: Client, settings: Any, purge: None) -> None:
    letters = [dead(key, f"RuntimeError: flaky handler refuses {key}") for key in ("job-0001", "job-0002")]
    untouched = dead("job-0099", "ValueError: something else")
    url = reverse("admin:events_failedmessagegroup_changelist")
    page = staff.get(url).content.decode()
    assert letters[0].fingerprint[:12] in page and ">2</a>" in page and 'value="retry"' in page

    with in_process_worker(settings):
        staff.post(url, {"group": letters[0].fingerprint[:12], "action": "retry"})
        wait_for(lambda: Notification.objects.filter(kind="flaky").count() == 2, message="both handled")

    assert set(Notification.objects.values_list("body", flat=True)) == {"job-0001", "job-0002"}
    assert set(DeadLetter.objects.filter(pk__in=[d.pk for d in letters]).values_list("status", flat=True)) == {"replayed"}
    assert DeadLetter.objects.get(pk=untouched.pk).status == "open"
    assert InboxEntry.objects.filter(handler=FLAKY, dead_lettered=False).count() == 2
    assert InboxEntry.objects.get(handler=FLAKY, dead_lettered=True).event_id == untouched.event_id  # still given up


def test_archiving_a_group_sets_it_aside(staff: Client, purge: None) -> None:
    letters = [dead(key, f"RuntimeError: flaky handler refuses {key}") for key in ("job-0001", "job-0002")]
    url = reverse("admin:events_failedmessagegroup_changelist")

    staff.post(url, {"group": letters[0].fingerprint, "action": "archive"})

    assert set(DeadLetter.objects.values_list("status", flat=True)) == {"archived"}
    assert "No open dead letters" in staff.get(url).content.decode()
    assert letters[0].fingerprint[:12] in staff.get(url, {"status": "archived"}).content.decode()


def test_the_console_acts_only_for_users_who_may_change_dead_letters(purge: None) -> None:
    letter = dead("job-0001", "RuntimeError: flaky handler refuses job-0001")
    viewer = get_user_model().objects.create_user("viewer", "v@example.com", "pw-123456", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client = Client()
    client.force_login(viewer)
    url = reverse("admin:events_failedmessagegroup_changelist")

    page = client.get(url)
    assert page.status_code == 200 and 'value="retry"' not in page.content.decode()
    assert client.post(url, {"group": letter.fingerprint, "action": "archive"}).status_code == 403
    assert DeadLetter.objects.get().status == "open"


def test_the_command_lists_retries_and_archives_groups(settings: Any, purge: None) -> None:
    letters = [dead(key, f"RuntimeError: flaky handler refuses {key}") for key in ("job-0001", "job-0002")]
    other = dead("job-0003", "ValueError: bad value 7")

    out = io.StringIO()
    call_command("deadletters", "--json", stdout=out)
    listed = {row["group"]: row for row in json.loads(out.getvalue())}
    key = letters[0].fingerprint[:12]
    assert listed[key]["count"] == 2 and listed[key]["handler"] == FLAKY and listed[key]["eventTypes"] == ["Flaky"]
    out = io.StringIO()
    call_command("deadletters", stdout=out)
    assert key in out.getvalue() and other.fingerprint[:12] in out.getvalue()

    with in_process_worker(settings):
        out = io.StringIO()
        call_command("deadletters", "retry", key, stdout=out)
        assert "2 replayed" in out.getvalue()
        wait_for(lambda: Notification.objects.filter(kind="flaky").count() == 2, message="the group handled")
        call_command("deadletters", "retry", "--id", str(other.pk), stdout=io.StringIO())
        wait_for(lambda: Notification.objects.filter(kind="flaky", body="job-0003").exists(), message="the one handled")

    third = dead("job-0004", "KeyError: 'x'")
    call_command("deadletters", "archive", third.fingerprint[:8], stdout=io.StringIO())
    assert DeadLetter.objects.get(pk=third.pk).status == "archived"
    with pytest.raises(CommandError, match="no dead letters in a group"):
        call_command("deadletters", "retry", "abcdef0123", stdout=io.StringIO())
    with pytest.raises(CommandError, match="not open"):
        call_command("deadletters", "retry", "--id", str(third.pk), stdout=io.StringIO())
