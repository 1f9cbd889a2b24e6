"""Counts, inside worker pool processes, the tasks run and the events they carried.

Kept in memory and written once, when the pool process exits, to $BENCH_WORKDIR/worker-<pid>.json,
so that counting costs the measured run nothing but a dictionary update per task.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, worker_process_shutdown

tasks: Counter[str] = Counter()
events: Counter[str] = Counter()


def _on_task_postrun(task: Any = None, args: Any = None, **_: Any) -> None:
    name = getattr(task, "name", "?")
    if name == "events.handle" and args and len(args) > 1 and args[1]:
        # Bench events carry the phase of the run they belong to.
        name = f"{name}:{args[1][0].get('event', {}).get('data', {}).get('phase', '?')}"
        events[name] += len(args[1])
    tasks[name] += 1


def _on_shutdown(**_: Any) -> None:
    directory = os.environ.get("BENCH_WORKDIR")
    if directory and tasks:
        Path(directory, f"worker-{os.getpid()}.json").write_text(json.dumps({"tasks": tasks, "events": events}))


def connect() -> None:
    task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid="bench.worker_stats.postrun")
    worker_process_shutdown.connect(_on_shutdown, weak=False, dispatch_uid="bench.worker_stats.shutdown")
