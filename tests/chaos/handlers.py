"""Handlers of the chaos service. Each records its effect as a `Notification` keyed by the eventId.

`CHAOS_STATE_DIR` (set by the suite for the processes it starts) holds what must survive a
process: the attempts of `Stubborn` events, one line per attempt with its time.
"""

from __future__ import annotations

import inspect
import os
import time
from pathlib import Path
from typing import Any

from events import Event, subscribe
from notifications.models import Notification
from tests.chaos.events import Blob, BlobV1, Mark, MarkV1, Poison, PoisonV1, Stubborn, StubbornV1, Work, WorkV1

# Handlers of one subject declared ordered are checked by the ledger to have run in sequence
# order; the keyword is passed where the bus offers it.
ORDERED = {"ordered": True} if "ordered" in inspect.signature(subscribe).parameters else {}


def effect(kind: str, event: Event[Any], body: str = "") -> None:
    Notification.objects.create(recipient="", kind=kind, subject=event.envelope.event_type, body=body, event_id=event.id)


@subscribe(Mark, version="1.0", service="chaos", **ORDERED)
def record_mark(event: Event[MarkV1]) -> None:
    effect("chaos-mark", event, f"{event.subject}:{event.sequence}")


@subscribe(Work, version="1.0", service="chaos")
def do_work(event: Event[WorkV1]) -> None:
    time.sleep(event.data.seconds)
    effect("chaos-work", event, event.data.key)


@subscribe(Poison, version="1.0", service="chaos", max_attempts=2)
def swallow_poison(event: Event[PoisonV1]) -> None:
    if event.data.mode == "exit":
        os._exit(1)  # as a segfault or the OOM killer would end the process
    raise RuntimeError(f"poison {event.data.key}")


def attempts_file(key: str) -> Path:
    return Path(os.environ.get("CHAOS_STATE_DIR", "/tmp")) / f"stubborn-{key}"


@subscribe(Stubborn, version="1.0", service="chaos", max_attempts=8)
def stubborn(event: Event[StubbornV1]) -> None:
    path = attempts_file(event.data.key)
    with path.open("a") as attempts:
        attempts.write(f"{time.time()}\n")
    if len(path.read_text().splitlines()) <= event.data.failures:
        raise RuntimeError(f"{event.data.key} fails this attempt")
    effect("chaos-stubborn", event, event.data.key)


@subscribe(Blob, version="1.0", service="chaos")
def keep_blob(event: Event[BlobV1]) -> None:
    effect("chaos-blob", event, event.data.key)
