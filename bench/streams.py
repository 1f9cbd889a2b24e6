"""Sustained courier stream: HTTP API → event log → relay → RabbitMQ → tracking, analytics and restaurant.

    .venv/bin/python bench/streams.py       (part of `make bench`)

A load generator on loopback posts courier positions (batches of BENCH_STREAM_BATCH per request,
BENCH_STREAM_COURIERS couriers) to gunicorn at rising rates (BENCH_STREAM_RATES updates/s, each for
BENCH_STREAM_SECONDS), bounded in count and time. Each consumer has a worker process of its own
with one pool process (`-Q <consumer> -c 1`), as in Procfile. Per rate it reports the updates/s
the API accepted, each consumer's deepest backlog (its event queue plus its task queue, sampled every
0.25 s), how long it took to finish after the load stopped, and the lag from a position's time (set
by the generator just before sending, so it includes the HTTP request) to the handler's commit
(inbox `processed_at`), p50/p99. A consumer keeps up at a rate when it finishes within
BENCH_STREAM_DRAIN_OK_S of the load stopping; the run stops at the first rate where one does not.

Like bench/run.py: a vhost and a database of its own, removed at the end; every subprocess stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
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
    message_count,
    percentile,
    wait_for,
)

RATES = [int(r) for r in os.environ.get("BENCH_STREAM_RATES", "250,500,750,1000,1500,2000").split(",")]
SECONDS = float(os.environ.get("BENCH_STREAM_SECONDS", "10"))
BATCH = int(os.environ.get("BENCH_STREAM_BATCH", "10"))
COURIERS = int(os.environ.get("BENCH_STREAM_COURIERS", "50"))
CLIENTS = int(os.environ.get("BENCH_STREAM_CLIENTS", "8"))
WEB_WORKERS = os.environ.get("BENCH_STREAM_WEB_WORKERS", "2")
DRAIN_OK_S = float(os.environ.get("BENCH_STREAM_DRAIN_OK_S", "2"))
DRAIN_MAX_S = float(os.environ.get("BENCH_STREAM_DRAIN_MAX_S", "60"))
CONSUMERS = {
    "tracking": "tracking.handlers.keep_latest_position",
    "analytics": "analytics.handlers.add_to_route",
    "restaurant": "restaurant.handlers.mark_progress",
}
PASSWORD = "bench-" + secrets.token_hex(8)


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_couriers() -> list[int]:
    from django.contrib.auth import get_user_model

    from delivery.models import Courier
    from delivery.services import delivery_create

    get_user_model().objects.create_user(username="bench", password=PASSWORD, is_staff=True)
    ids = []
    for i in range(COURIERS):
        courier = Courier.objects.create(name=f"bench courier {i}")
        lat, lon = 52.40 + i * 0.002, 13.30
        delivery_create(courier=courier, pickup_lat=lat, pickup_lon=lon, dropoff_lat=lat + 0.02, dropoff_lon=lon + 0.03)
        ids.append(courier.pk)
    return ids


class Load:
    """Open-loop load: request k is due at start + k / requests-per-second, whoever sends it."""

    def __init__(self, base_url: str, couriers: list[int], sequences: dict[int, int]) -> None:
        self.base_url = base_url
        self.couriers = couriers
        self.sequences = sequences
        self.lock = threading.Lock()

    def run(self, rate: int, seconds: float, new_connections: bool = False) -> dict[str, Any]:
        import httpx

        requests_total = max(1, round(rate * seconds / BATCH))
        interval = BATCH / rate
        next_index = [0]
        accepted, failed, statuses = [0], [0], {}
        response_ms: list[float] = []
        start = time.monotonic() + 0.2

        def worker() -> None:
            # New connections per request spread the warm-up over every web worker (a kept-alive connection stays on one).
            headers = {"Connection": "close"} if new_connections else {}
            with httpx.Client(base_url=self.base_url, auth=("bench", PASSWORD), timeout=30, headers=headers) as client:
                while True:
                    with self.lock:
                        k = next_index[0]
                        if k >= requests_total:
                            return
                        next_index[0] += 1
                        courier = self.couriers[k % len(self.couriers)]
                        first = self.sequences[courier] + 1
                        self.sequences[courier] += BATCH
                    delay = start + k * interval - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    now = datetime.now(UTC)
                    body = {
                        "positions": [
                            {
                                "lat": 52.4 + (first + j) * 1e-5,
                                "lon": 13.3 + (first + j) * 1e-5,
                                "time": now.isoformat(),
                                "sequence": first + j,
                            }
                            for j in range(BATCH)
                        ]
                    }
                    try:
                        sent_at = time.perf_counter()
                        response = client.post(f"/api/couriers/{courier}/locations", json=body)
                        took = (time.perf_counter() - sent_at) * 1000
                    except httpx.HTTPError:
                        with self.lock:
                            failed[0] += 1
                        continue
                    with self.lock:
                        response_ms.append(took)
                        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                        if response.status_code == 202:
                            accepted[0] += response.json()["accepted"]
                        else:
                            failed[0] += 1

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds * 10 + 60)
        elapsed = time.monotonic() - start
        return {
            "accepted": accepted[0],
            "failed_requests": failed[0],
            "statuses": statuses,
            "elapsed_s": elapsed,
            "response_p50_ms": percentile(response_ms, 50) if response_ms else None,
            "response_p99_ms": percentile(response_ms, 99) if response_ms else None,
        }


class Sampler:
    def __init__(self, broker_url: str) -> None:
        self.broker_url = broker_url
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from kombu import Connection

        from events import subscriptions, topology

        # Its event queue, its ordered queue if it has ordered handlers, and its task queue.
        queues = {
            s: [topology.event_queue_name(s), s, *([topology.ordered_queue_name(s)] if subscriptions.has_ordered(s) else [])]
            for s in CONSUMERS
        }
        with Connection(self.broker_url) as connection:
            while not self.stop.is_set():
                depth = {s: sum(message_count(connection, q) for q in names) for s, names in queues.items()}
                self.samples.append((time.monotonic(), depth))
                self.stop.wait(0.25)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def handled(handler: str) -> int:
    from events.models import InboxEntry

    return InboxEntry.objects.filter(handler=handler).count()


def lags_ms(handler: str, since: datetime) -> list[float]:
    from events.models import InboxEntry, StoredEvent

    times = dict(
        StoredEvent.objects.filter(event_type="LocationUpdated", timestamp__gte=since).values_list("event_id", "timestamp")
    )
    rows = InboxEntry.objects.filter(handler=handler, processed_at__gte=since).values_list("event_id", "processed_at")
    import uuid  # the inbox keeps event ids as text, the log as UUIDs: joined here

    return [(at - times[uuid.UUID(e)]).total_seconds() * 1000 for e, at in rows if uuid.UUID(e) in times]


def publish_lags_ms(since: datetime) -> list[float]:
    """From a position's time to the broker's confirm of its event (`published_at`): the API and the relay."""
    from events.models import StoredEvent

    rows = StoredEvent.objects.filter(event_type="LocationUpdated", timestamp__gte=since, published_at__isnull=False)
    return [(published - at).total_seconds() * 1000 for at, published in rows.values_list("timestamp", "published_at")]


def drain_text(seconds: float | None) -> str:
    return f"{seconds:.1f}s" if seconds is not None else f">{DRAIN_MAX_S:.0f}s"


def main() -> int:
    management, overview = broker_admin()
    workdir = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    vhost = f"bench-streams-{os.getpid()}-{secrets.token_hex(3)}"
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "steps": [],
        "config": {
            "rates": RATES,
            "seconds": SECONDS,
            "batch": BATCH,
            "couriers": COURIERS,
            "clients": CLIENTS,
            "web_workers": WEB_WORKERS,
            "drain_ok_s": DRAIN_OK_S,
        },
    }
    failed = False
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        management.create_vhost(vhost, BROKER_USER)
        stack.callback(lambda: (management.delete_vhost(vhost), log(f"deleted vhost {vhost}")))
        broker_url = f"amqp://{BROKER_USER}:{BROKER_PASSWORD}@{BROKER_HOST}:{BROKER_PORT}/{urllib.parse.quote(vhost, safe='')}"
        port = free_tcp_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "DATABASE_URL": fresh_database(stack, workdir),
            "CELERY_BROKER_URL": broker_url,
            "EVENTS_RELAY_WAKE_ADDRESS": f"127.0.0.1:{free_udp_port()}",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "SIMULATION_ENABLED": "False",
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

            stack.callback(connections.close_all)
            couriers = setup_couriers()
            results["machine"] = {
                "cpu_count": os.cpu_count(),
                "db_vendor": connection.vendor,
                "rabbitmq": overview.get("rabbitmq_version"),
                "load_average_at_start": os.getloadavg(),
            }
            processes.start("relay", [str(PYTHON), "manage.py", "relay"])
            gunicorn = str(Path(CELERY).with_name("gunicorn"))
            processes.start(
                "web",
                [
                    gunicorn,
                    "project.wsgi",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    WEB_WORKERS,
                    "--worker-class",
                    "gthread",
                    "--threads",
                    "4",
                    "--log-level",
                    "warning",
                ],
            )
            # One worker process per consumer, one pool process each (see "Why one process per consumer" in bench/README.md).
            for name in CONSUMERS:
                processes.start(
                    f"worker-{name}",
                    [str(CELERY), "-A", "project", "worker", "-Q", name, "-c", "1", "-n", f"{name}-{os.getpid()}@%h"]
                    + ["--without-gossip", "--without-mingle", "-l", os.environ.get("BENCH_LOG_LEVEL", "WARNING")],
                )
            base_url = f"http://127.0.0.1:{port}"

            def up() -> bool:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        return True
                except OSError:
                    return False

            wait_for(up, 60, "gunicorn", processes, interval=0.2)
            time.sleep(2)  # let the worker's consumer step declare and bind its queues
            load = Load(base_url, couriers, dict.fromkeys(couriers, 0))
            log("warming up (two requests per courier, each on a new connection) ...")
            load.run(rate=COURIERS * BATCH, seconds=2, new_connections=True)
            from events.models import StoredEvent

            total_published = StoredEvent.objects.filter(event_type="LocationUpdated").count()
            wait_for(lambda: all(handled(h) >= total_published for h in CONSUMERS.values()), DRAIN_MAX_S, "warm-up", processes)
            for rate in RATES:
                log(f"{rate} updates/s for {SECONDS:.0f}s ...")
                since = datetime.now(UTC)
                with Sampler(broker_url) as sampler:
                    sent = load.run(rate=rate, seconds=SECONDS)
                    stopped = time.monotonic()
                    total_published = StoredEvent.objects.filter(event_type="LocationUpdated").count()
                    drains: dict[str, float | None] = {}
                    for name, handler in CONSUMERS.items():
                        try:
                            wait_for(
                                lambda h=handler, n=total_published: handled(h) >= n, DRAIN_MAX_S, f"{name} to finish", processes
                            )
                            drains[name] = time.monotonic() - stopped
                        except TimeoutError:
                            drains[name] = None
                step: dict[str, Any] = {
                    "target_rate": rate,
                    "accepted": sent["accepted"],
                    "accepted_rate": sent["accepted"] / sent["elapsed_s"],
                    "failed_requests": sent["failed_requests"],
                    "statuses": sent["statuses"],
                    "response_p50_ms": sent["response_p50_ms"],
                    "response_p99_ms": sent["response_p99_ms"],
                    "consumers": {},
                }
                published = publish_lags_ms(since)
                step["published_lag_p50_ms"] = percentile(published, 50) if published else None
                step["published_lag_p99_ms"] = percentile(published, 99) if published else None
                for name, handler in CONSUMERS.items():
                    lags = lags_ms(handler, since)
                    depths = [s[1][name] for s in sampler.samples]
                    step["consumers"][name] = {
                        "max_backlog": max(depths) if depths else None,
                        "drain_s": drains[name],
                        "kept_up": drains[name] is not None and drains[name] <= DRAIN_OK_S,
                        "lag_p50_ms": percentile(lags, 50) if lags else None,
                        "lag_p99_ms": percentile(lags, 99) if lags else None,
                        "handled": len(lags),
                    }
                results["steps"].append(step)
                summary = ", ".join(
                    f"{n}: backlog<={c['max_backlog']}, done {drain_text(c['drain_s'])} after, "
                    f"lag p50/p99 {c['lag_p50_ms'] or 0:.0f}/{c['lag_p99_ms'] or 0:.0f} ms"
                    for n, c in step["consumers"].items()
                )
                log(
                    f"  accepted {step['accepted_rate']:.0f}/s ({sent['failed_requests']} failed requests), answered "
                    f"p50/p99 {sent['response_p50_ms'] or 0:.0f}/{sent['response_p99_ms'] or 0:.0f} ms; published "
                    f"p50/p99 {step['published_lag_p50_ms'] or 0:.0f}/{step['published_lag_p99_ms'] or 0:.0f} ms; {summary}"
                )
                if not all(c["kept_up"] for c in step["consumers"].values()) or step["accepted_rate"] < 0.9 * rate:
                    behind = [n for n, c in step["consumers"].items() if not c["kept_up"]] or ["the API"]
                    results["falls_behind_at"] = {"rate": rate, "who": behind}
                    log(f"  falls behind at {rate}/s: {', '.join(behind)}")
                    break
        except (Exception, KeyboardInterrupt) as exc:
            failed = True
            results["error"] = f"{type(exc).__name__}: {exc}"
            log(f"FAILED: {results['error']}")
            for name, _ in processes.running:
                print(f"--- last lines of {name}.log ---\n{processes.tail(name)}", file=sys.stderr)
        finally:
            results["finished_at"] = datetime.now(UTC).isoformat()
            report(results)
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "streams.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
            log(f"wrote {RESULTS / 'streams.json'}")
            if failed or os.environ.get("BENCH_KEEP_LOGS"):
                keep = RESULTS / "streams-logs"
                keep.mkdir(exist_ok=True)
                processes.stop_all()
                for path in workdir.glob("*.log"):
                    shutil.copy(path, keep / path.name)
                log(f"relay, web and worker logs are in {keep}")
    return 1 if failed else 0


def report(results: dict[str, Any]) -> None:
    kept = [
        s
        for s in results["steps"]
        if all(c["kept_up"] for c in s["consumers"].values()) and s["accepted_rate"] >= 0.9 * s["target_rate"]
    ]
    best = max(kept, key=lambda s: s["accepted_rate"]) if kept else None
    print()
    print("sustained courier stream (API -> bus -> tracking, analytics, restaurant)")
    for s in results["steps"]:
        t = s["consumers"]["tracking"]
        print(
            f"  target {s['target_rate']:>5}/s  accepted {s['accepted_rate']:>7.0f}/s"
            f"  tracking lag p50 {t['lag_p50_ms'] or 0:>6.0f} ms  p99 {t['lag_p99_ms'] or 0:>6.0f} ms  backlog max "
            + " ".join(f"{n}={c['max_backlog']}" for n, c in s["consumers"].items())
        )
    if best:
        t = best["consumers"]["tracking"]
        met = best["accepted_rate"] >= 1000 and (t["lag_p99_ms"] or 1e9) < 1000
        print(
            f"  sustained with every consumer keeping up: {best['accepted_rate']:.0f} updates/s; tracking lag p50 "
            f"{t['lag_p50_ms']:.0f} ms, p99 {t['lag_p99_ms']:.0f} ms; "
            f"goal >= 1000/s with p99 < 1 s: {'met' if met else 'not met'}"
        )
        results["sustained"] = {
            "rate": best["accepted_rate"],
            "lag_p50_ms": t["lag_p50_ms"],
            "lag_p99_ms": t["lag_p99_ms"],
            "goal_met": met,
        }
    fb = results.get("falls_behind_at")
    print(
        f"  first rate at which a consumer falls behind: {fb['rate']}/s ({', '.join(fb['who'])})"
        if fb
        else "  no consumer fell behind at the rates tried"
    )


if __name__ == "__main__":
    sys.exit(main())
