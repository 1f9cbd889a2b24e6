"""Logs: every line the bus writes carries eventId, correlationId and service; JSON with LOG_FORMAT=json."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from events import publish
from events.models import DeadLetter
from events.observability.logs import EventContextFilter, JsonFormatter
from tests import support
from tests.conftest import ROOT, RelayThread, raw_publish
from tests.support import Flaky, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def json_lines(worker: Any) -> Iterator[io.StringIO]:
    """JSON records of everything logged while the test runs (added after the worker configured logging)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(EventContextFilter())
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # the in-process worker sets WARNING
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_the_bus_lines_carry_the_event_and_the_service(json_lines: io.StringIO, worker: Any, amqp: Any) -> None:
    from events.relay import Relay

    support.failures_left["logged"] = 1
    event = publish(Flaky, {"key": "logged"}, correlation_id="flow-logged")
    with RelayThread(Relay(wake_address="", poll_seconds=0.05)):
        wait_for(lambda: support.calls["logged"] == 2, message="retried once, then handled")
    raw_publish(amqp, b"not json", "tests.Flaky", headers={}, content_type="application/json")
    wait_for(lambda: DeadLetter.objects.filter(reason__contains="JSON").exists(), message="dead letter")

    lines = records(json_lines)
    retry = next(r for r in lines if "retrying in" in r["message"])
    assert (retry["eventId"], retry["correlationId"], retry["service"]) == (str(event.event_id), "flow-logged", "testsvc")
    assert retry["handler"] == "tests.support.flaky_handler" and retry["level"] == "WARNING"
    assert retry["logger"] == "events.handling" and retry["time"].endswith("Z")
    relay = next(r for r in lines if r["message"].startswith("relay connected"))
    assert relay["service"] == "relay"
    dead = next(r for r in lines if r["message"].startswith("dead-lettering a message"))
    assert dead["service"] == "testsvc"
    for record in lines:
        assert {"eventId", "correlationId", "service"} <= record.keys()


def test_log_format_json_switches_every_process_to_json() -> None:
    code = (
        "import django, logging; django.setup(); "
        "from events import tracing; from events.envelope import Envelope; from datetime import datetime, UTC; "
        "e = Envelope(event_type='T', event_version='1.0', timestamp=datetime.now(UTC), event_id='e-1', source='s', data={}, "
        "correlation_id='c-1'); "
        "ctx = tracing.handling(e); ctx.__enter__(); logging.getLogger('events.handling').warning('inside %s', 'a handler')"
    )
    env = {"DJANGO_SETTINGS_MODULE": "project.settings", "LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["message"] == "inside a handler" and (line["eventId"], line["correlationId"]) == ("e-1", "c-1")
    assert line["level"] == "WARNING" and "service" in line
