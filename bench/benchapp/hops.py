"""Where the time of one event goes, hop by hop, for the latency figure of bench/run.py.

In the relay (`manage.py bench_relay`, the relay with two recording hooks): when each row was
read (leased) and when the broker confirmed it. In the worker: when the consumer queued the
handler task carrying an event (`after_task_publish`, in the worker's main process) and when that
task started (`task_prerun`, in the pool process). Only the latest `KEEP` events are kept, in
memory, and written once at exit to $BENCH_WORKDIR, so recording costs the run a dictionary
update per event.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from celery.signals import after_task_publish, task_prerun, worker_process_shutdown, worker_shutdown

from events.relay import LeasedRow, Relay

KEEP = 5000


class _Recorder:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.times: OrderedDict[str, dict[str, float]] = OrderedDict()

    def record(self, key: Any, hop: str, at: float) -> None:
        key = str(key)
        entry = self.times.get(key)
        if entry is None:
            entry = self.times[key] = {}
            if len(self.times) > KEEP:
                self.times.popitem(last=False)
        entry[hop] = at

    def write(self) -> None:
        directory = os.environ.get("BENCH_WORKDIR")
        if directory and self.times:
            Path(directory, f"{self.prefix}-{os.getpid()}.json").write_text(json.dumps(self.times))


class HopRelay(Relay):
    """The relay, recording when each row was read and confirmed (by position)."""

    recorder = _Recorder("hops-relay")

    def _claim(self) -> list[LeasedRow]:
        rows = super()._claim()
        now = time.time()
        for row in rows:
            self.recorder.record(row.position, "relay_read", now)
        return rows

    def on_confirmed(self, positions: list[int]) -> None:
        super().on_confirmed(positions)
        now = time.time()
        for position in positions:
            self.recorder.record(position, "published", now)


_worker = _Recorder("hops-worker")


def _latency_items(args: Any) -> list[dict[str, Any]]:
    items = args[1] if args and len(args) > 1 and isinstance(args[1], list) else []
    return [i for i in items if i.get("event", {}).get("data", {}).get("phase") == "latency"]


def _on_publish(sender: Any = None, body: Any = None, **_: Any) -> None:
    if sender == "events.handle" and body:
        now = time.time()
        for item in _latency_items(body[0]):
            _worker.record(item["event"]["eventId"], "consumer", now)


def _on_prerun(task: Any = None, args: Any = None, **_: Any) -> None:
    if getattr(task, "name", "") == "events.handle":
        now = time.time()
        for item in _latency_items(args):
            _worker.record(item["event"]["eventId"], "handler_task", now)


def _on_shutdown(**_: Any) -> None:
    _worker.write()


def connect() -> None:
    after_task_publish.connect(_on_publish, weak=False, dispatch_uid="bench.hops.publish")
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="bench.hops.prerun")
    worker_shutdown.connect(_on_shutdown, weak=False, dispatch_uid="bench.hops.shutdown")
    worker_process_shutdown.connect(_on_shutdown, weak=False, dispatch_uid="bench.hops.process_shutdown")


def load(workdir: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(by position, by event id): the hops written by the relays and the workers of a run."""
    relay: dict[str, dict[str, float]] = {}
    worker: dict[str, dict[str, float]] = {}
    for into, pattern in ((relay, "hops-relay-*.json"), (worker, "hops-worker-*.json")):
        for path in workdir.glob(pattern):
            for key, hops in json.loads(path.read_text()).items():
                into.setdefault(key, {}).update(hops)
    return relay, worker
