import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from events import publish
from events.models import DeadLetter
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
