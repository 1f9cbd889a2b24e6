"""Two relays at once (the PostgreSQL deployment with a standby relay, or a rolling restart)."""

import json
from collections import defaultdict

import pytest
from django.db import transaction
from kombu import Connection

from events import publish
from events.models import StoredEvent
from events.relay import Relay
from tests.conftest import RelayThread, basic_get
from tests.support import Ping, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SUBJECTS = 8
PER_SUBJECT = 40


def test_two_relays_publish_everything_and_keep_each_subjects_order(amqp: Connection, purge: None) -> None:
    with transaction.atomic():
        for n in range(1, PER_SUBJECT + 1):
            for s in range(SUBJECTS):
                publish(Ping, {"text": f"{s}:{n}"}, version="1.0", subject=f"agg-{s}", sequence=n)

    with (
        RelayThread(Relay(wake_address="", batch_size=25, poll_seconds=0.02)),
        RelayThread(Relay(wake_address="", batch_size=25, poll_seconds=0.02)),
    ):
        wait_for(lambda: not StoredEvent.objects.filter(published_at__isnull=True).exists(), timeout=60)

    seen: dict[str, list[int]] = defaultdict(list)
    while (message := basic_get(amqp, "testsvc.events")) is not None:
        body = json.loads(message.body)
        if body["sequence"] not in seen[body["subject"]]:  # a republished duplicate is allowed, a gap or reorder is not
            seen[body["subject"]].append(body["sequence"])
    assert {subject: sequences for subject, sequences in seen.items()} == {
        f"agg-{s}": list(range(1, PER_SUBJECT + 1)) for s in range(SUBJECTS)
    }
