"""The cost of ordered handlers: the same backlog drained by an unordered and by an ordered handler.

    .venv/bin/python bench/ordered.py       (part of `make bench`)

BENCH_ORDERED_N events `bench.BenchStep` (BENCH_ORDERED_SUBJECTS subjects, each with its own
sequence 1, 2, 3 …, the subjects interleaved) are published and relayed first, so that both
`bench.events` (an unordered no-op handler, run by handler tasks) and `bench_ordered.events.ordered`
(the same no-op handler, `ordered=True`, run by the lanes) hold the whole backlog. Then one worker
per service drains it, one after the other, each `-c BENCH_ORDERED_CONCURRENCY` (2): events/s from
the worker's start to the last inbox row, and how many events ran after a later sequence of their
subject (by the order of their inbox rows). The ordered figure must be 0 out of order; the ratio
ordered/unordered is the cost.

Like bench/run.py: a vhost and a database of its own, removed at the end; every subprocess stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from bench.run import (  # noqa: E402
    BROKER_HOST,
    BROKER_PASSWORD,
    BROKER_PORT,
    BROKER_USER,
    CELERY,
    PYTHON,
    RESULTS,
    Processes,
    as_in_production,
    broker_admin,
    free_udp_port,
    fresh_database,
    log,
    wait_for,
)

N = int(os.environ.get("BENCH_ORDERED_N", "5000"))
SUBJECTS = int(os.environ.get("BENCH_ORDERED_SUBJECTS", "100"))
CONCURRENCY = os.environ.get("BENCH_ORDERED_CONCURRENCY", "2")
HANDLERS = {
    "unordered": ("bench", "bench.benchapp.handlers.bench_step_unordered"),
    "ordered": ("bench_ordered", "bench.benchapp.handlers.bench_step_ordered"),
}


def publish_steps() -> None:
    from django.db import transaction

    from bench.benchapp.events import BenchStep
    from events.publishing import publish

    for first in range(0, N, 100):
        with transaction.atomic():
            for i in range(first, min(N, first + 100)):
                publish(BenchStep, {"n": i}, subject=f"step-{i % SUBJECTS}", sequence=i // SUBJECTS + 1)


def out_of_order(handler: str) -> int:
    """Events the handler ran after a later sequence of their subject (inbox rows in id order)."""
    from events.models import InboxEntry, StoredEvent

    sequences = {str(e): (s, q) for e, s, q in StoredEvent.objects.values_list("event_id", "subject", "sequence")}
    highest: dict[str, int] = defaultdict(int)
    late = 0
    for event_id in InboxEntry.objects.filter(handler=handler).order_by("id").values_list("event_id", flat=True):
        subject, sequence = sequences[event_id]
        if sequence < highest[subject]:
            late += 1
        highest[subject] = max(highest[subject], sequence)
    return late


def drain(processes: Processes, name: str, service: str, handler: str) -> dict[str, Any]:
    from events.models import InboxEntry

    start = time.time()
    processes.start(
        f"worker-{name}",
        [
            str(CELERY),
            "-A",
            "project",
            "worker",
            "-Q",
            service,
            "-c",
            CONCURRENCY,
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "-l",
            os.environ.get("LOG_LEVEL", "WARNING"),
        ],
    )
    wait_for(
        lambda: InboxEntry.objects.filter(handler=handler).count() >= N,
        max(120.0, N / 10),
        f"{name}: {N} events",
        processes,
        interval=0.1,
    )
    last = max(at.timestamp() for at in InboxEntry.objects.filter(handler=handler).values_list("processed_at", flat=True))
    processes.stop_all()
    return {
        "n": N,
        "elapsed_s": last - start,
        "rate": N / (last - start),
        "unit": "events/s",
        "out_of_order": out_of_order(handler),
        "worker": f"-Q {service} -c {CONCURRENCY} (start included)",
    }


def main() -> int:
    management, _ = broker_admin()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ordered-"))
    vhost = f"bench-ordered-{os.getpid()}-{secrets.token_hex(3)}"
    results: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "n": N, "subjects": SUBJECTS, "figures": {}}
    failed = False
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        management.create_vhost(vhost, BROKER_USER)
        stack.callback(lambda: (management.delete_vhost(vhost), log(f"deleted vhost {vhost}")))
        broker_url = f"amqp://{BROKER_USER}:{BROKER_PASSWORD}@{BROKER_HOST}:{BROKER_PORT}/{urllib.parse.quote(vhost, safe='')}"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "DATABASE_URL": fresh_database(stack, workdir),
            "CELERY_BROKER_URL": broker_url,
            "EVENTS_RELAY_WAKE_ADDRESS": f"127.0.0.1:{free_udp_port()}",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            **as_in_production(),
        }
        os.environ.update(env)
        processes = Processes(env, workdir)
        stack.callback(processes.stop_all)
        try:
            subprocess.run([str(PYTHON), "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
            import django

            django.setup()
            from django.db import connection, connections

            from events import topology
            from events.models import StoredEvent

            stack.callback(connections.close_all)
            results["db_vendor"] = connection.vendor
            topology.declare_quietly()
            log(f"publishing and relaying {N} steps over {SUBJECTS} subjects ...")
            publish_steps()
            processes.start("relay", [str(PYTHON), "manage.py", "relay"])
            wait_for(lambda: not StoredEvent.objects.filter(published_at__isnull=True).exists(), 300, "the relay", processes)
            processes.stop_all()
            for name, (service, handler) in HANDLERS.items():
                log(f"{name}: draining {N} events with one worker ...")
                results["figures"][name] = drain(processes, name, service, handler)
            figures = results["figures"]
            results["ordered_vs_unordered"] = figures["ordered"]["rate"] / figures["unordered"]["rate"]
            for name, figure in figures.items():
                log(
                    f"{name:>9}: {figure['rate']:7.0f} events/s, {figure['out_of_order']} of {N} ran after a later sequence "
                    "of their subject"
                )
            log(f"ordered = {results['ordered_vs_unordered']:.2f} x unordered ({results['db_vendor']})")
        except (Exception, KeyboardInterrupt) as exc:
            failed = True
            results["error"] = f"{type(exc).__name__}: {exc}"
            log(f"FAILED: {results['error']}")
            for name, _ in processes.running:
                print(f"--- last lines of {name}.log ---\n{processes.tail(name)}", file=sys.stderr)
        finally:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "ordered.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
            log(f"wrote {RESULTS / 'ordered.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
