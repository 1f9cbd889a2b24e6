"""Streams on the event log: append at an expected version, refused when another writer got there first."""

import pytest

from events import streams
from events.models import StoredEvent
from events.streams import ConcurrencyError, NewEvent
from tests.support import Ping

pytestmark = pytest.mark.django_db


def ping(text: str) -> NewEvent:
    return NewEvent(Ping, {"text": text}, version="1.0")


def test_append_writes_the_next_versions_and_read_returns_them_in_order() -> None:
    streams.append("S-1", [ping("a"), ping("b")], expected_version=0)
    streams.append("S-1", [ping("c")], expected_version=2)
    assert [(e.sequence, e.data["text"]) for e in streams.read("S-1")] == [(1, "a"), (2, "b"), (3, "c")]
    assert [e.sequence for e in streams.read("S-1", up_to_version=2)] == [1, 2]
    assert streams.version_of("S-1") == 3 and streams.version_of("S-2") == 0


def test_a_stale_writer_gets_a_concurrency_error_and_the_transaction_goes_on() -> None:
    streams.append("S-1", [ping("a")], expected_version=0)
    streams.append("S-1", [ping("b")], expected_version=1)
    with pytest.raises(ConcurrencyError, match="stream 'S-1' is at version 2, not 1 as expected"):
        streams.append("S-1", [ping("late")], expected_version=1)
    # nothing of the refused append remains, and the caller's transaction is still usable
    assert StoredEvent.objects.filter(subject="S-1").count() == 2
    streams.append_to_end("S-1", [ping("c")])
    assert [e.data["text"] for e in streams.read("S-1")] == ["a", "b", "c"]
