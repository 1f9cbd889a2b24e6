import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from events import publish
from events.models import DeadLetter, InboxEntry
from tests.support import Ping

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456")
    client = Client()
    client.force_login(user)
    return client


def test_the_event_log_lists_events_and_filters_by_publication_and_correlation(admin_client: Client) -> None:
    published = publish(Ping, {"text": "a"}, version="1.0", correlation_id="flow-1")
    publish(Ping, {"text": "b"}, version="1.0", correlation_id="flow-2")
    type(published).objects.filter(pk=published.pk).update(published_at="2025-01-01T00:00:00Z")
    url = reverse("admin:events_storedevent_changelist")

    assert admin_client.get(url).status_code == 200
    waiting = admin_client.get(url, {"published": "no"}).context["cl"].result_list
    assert [e.data["text"] for e in waiting if e.event_type == "Ping"] == ["b"]
    by_flow = admin_client.get(url, {"q": "flow-1"}).context["cl"].result_list
    assert [e.data["text"] for e in by_flow] == ["a"]
    assert admin_client.get(reverse("admin:events_storedevent_change", args=[published.pk])).status_code == 200


def test_dead_letters_and_inbox_are_visible(admin_client: Client) -> None:
    dead = DeadLetter.objects.create(
        stage=DeadLetter.Stage.CONSUMER, service="testsvc", reason="body is not valid JSON", raw_body="{"
    )

    page = admin_client.get(reverse("admin:events_deadletter_changelist"))
    assert page.status_code == 200 and b"body is not valid JSON" in page.content
    assert admin_client.get(reverse("admin:events_deadletter_change", args=[dead.pk])).status_code == 200
    assert admin_client.get(reverse("admin:events_inboxentry_changelist")).status_code == 200


def test_replaying_an_unreplayable_dead_letter_says_why(admin_client: Client) -> None:
    dead = DeadLetter.objects.create(stage=DeadLetter.Stage.CONSUMER, service="testsvc", reason="not JSON")

    response = admin_client.post(
        reverse("admin:events_deadletter_changelist"),
        {"action": "replay", "_selected_action": [dead.pk]},
        follow=True,
    )

    assert "not replayed: this dead letter keeps neither a handler" in response.content.decode()
    dead.refresh_from_db()
    assert dead.status == DeadLetter.Status.OPEN


def test_the_event_log_lists_event_ids_newest_first(admin_client: Client) -> None:
    first = publish(Ping, {"text": "a"}, version="1.0")
    second = publish(Ping, {"text": "b"}, version="1.0", subject="ping-7", sequence=3)

    page = admin_client.get(reverse("admin:events_storedevent_changelist"))

    html = page.content.decode()
    assert page.context["title"] == "Event log"
    assert ">Event ID<" in html
    assert html.index(str(second.event_id)) < html.index(str(first.event_id))
    assert "tests.Ping (1.0)" in html and "ping-7 (3)" in html and "waiting" in html


def test_an_events_page_shows_the_handlers_that_handled_it_and_its_dead_letters(admin_client: Client) -> None:
    event = publish(Ping, {"text": "where"}, version="1.0")
    InboxEntry.objects.create(event_id=str(event.event_id), handler="tests.support.ping_v1_handler", event_type="Ping")
    dead = DeadLetter.objects.create(
        stage=DeadLetter.Stage.HANDLER,
        service="testsvc",
        handler="tests.support.ping_v2_handler",
        event_id=str(event.event_id),
        event_type="Ping",
        reason="RuntimeError: no luck",
    )
    other = publish(Ping, {"text": "elsewhere"}, version="1.0")
    elsewhere = DeadLetter.objects.create(
        stage=DeadLetter.Stage.CONSUMER, service="testsvc", event_id=str(other.event_id), reason="x"
    )

    page = admin_client.get(reverse("admin:events_storedevent_change", args=[event.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    handled_row = html[html.index("tests.support.ping_v1_handler") :].split("</tr>")[0]
    assert "testsvc" in handled_row and "handled 20" in handled_row
    waiting_row = html[html.index("tests.support.ping_v2_handler</td>") :].split("</tr>")[0]
    assert "not handled (yet)" in waiting_row
    assert reverse("admin:events_deadletter_change", args=[dead.pk]) in html and "RuntimeError: no luck" in html
    assert reverse("admin:events_deadletter_change", args=[elsewhere.pk]) not in html


def test_the_dead_letters_pages_say_what_they_are_and_are_read_only(admin_client: Client) -> None:
    event = publish(Ping, {"text": "dead"}, version="1.0")
    dead = DeadLetter.objects.create(
        stage=DeadLetter.Stage.HANDLER,
        service="testsvc",
        handler="tests.support.ping_v1_handler",
        event_id=str(event.event_id),
        reason="boom",
    )

    listing = admin_client.get(reverse("admin:events_deadletter_changelist"))
    page = admin_client.get(reverse("admin:events_deadletter_change", args=[dead.pk]))

    assert "read-only: inspect, replay" in listing.context["title"]
    assert "Replay to its handler" in listing.content.decode()
    assert page.context["title"].startswith("Dead letter (read-only")
    assert page.context["has_change_permission"] is False and 'name="_save"' not in page.content.decode()
    assert reverse("admin:events_storedevent_change", args=[event.pk]) in page.content.decode()
    response = admin_client.post(reverse("admin:events_deadletter_change", args=[dead.pk]), {"reason": "edited"})
    dead.refresh_from_db()
    assert response.status_code == 403 and dead.reason == "boom"
