"""Benchmark of the event bus against plain kombu and plain Celery, on one broker, in one run.

    .venv/bin/python bench/run.py          (or `make bench`; BENCH_N=20000 for more messages)

Figures (see bench/README.md):
  (a) kombu publish, no confirms      baseline for (b)
  (b) relay publish, with confirms    Relay.pump over N stored events; target (b)/(a) >= 0.8
  (c) celery .delay() -> worker done  baseline for (d)
  (d) bus end to end                  publish -> relay -> broker -> consumer -> handler; target (d)/(c) >= 1
      plus commit -> handler latency at light load; target p50 < 50 ms
  (p) payroll run                     N employees paid by the payroll worker -> N SalaryCredited -> N notices
  (e) checkout saga                   orders placed -> confirmed per second, placing -> confirmed p50/p99
  (f) projection rebuild              rebuild_projections vs a raw read of the same log rows; target >= 0.5

Everything runs in a vhost created for the run and on a fresh database (a temporary SQLite file,
or a new PostgreSQL database on the server named by BENCH_DATABASE_URL / DATABASE_URL); both are
removed at the end, as are the relay and worker subprocesses, also when the run fails.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PYTHON = ROOT / ".venv" / "bin" / "python"
CELERY = ROOT / ".venv" / "bin" / "celery"

# Run as a script, sys.path[0] is bench/: put the repository root there instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

N = int(os.environ.get("BENCH_N", "10000"))
LATENCY_EVENTS = int(os.environ.get("BENCH_LATENCY_EVENTS", "200"))
LATENCY_INTERVAL = float(os.environ.get("BENCH_LATENCY_INTERVAL_MS", "10")) / 1000
TXN_SIZE = int(os.environ.get("BENCH_TXN_SIZE", "1"))  # events per transaction in (d)
# Producer processes of (c) and (d), as a web application has several; (c1)/(d1) repeat them with these counts.
PRODUCERS = int(os.environ.get("BENCH_PRODUCERS", "4"))
PRODUCERS_ALSO = [int(x) for x in os.environ.get("BENCH_PRODUCERS_ALSO", "1").split(",") if x.strip()]
HISTORY_ROWS = int(os.environ.get("BENCH_HISTORY_ROWS", "1000000"))
# (a), (b) and (h) take a second or two each: every one is the median of this many rounds ((a) and (b) alternating).
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
BACKLOG = int(os.environ.get("BENCH_BACKLOG", "100000"))
SCALE_N = int(os.environ.get("BENCH_SCALE_N", "5000"))
SCALE_WORKERS = [int(x) for x in os.environ.get("BENCH_SCALE_WORKERS", "1,2,4").split(",")]
PHASES = set(os.environ.get("BENCH_PHASES", "abcdpefhms"))  # run only some figures, e.g. BENCH_PHASES=ab
SAGA_N = int(os.environ.get("BENCH_SAGA_ORDERS", "300"))
SAGA_LIGHT = int(os.environ.get("BENCH_SAGA_LIGHT_ORDERS", "40"))
SAGA_LIGHT_INTERVAL = float(os.environ.get("BENCH_SAGA_LIGHT_INTERVAL_MS", "250")) / 1000
REBUILD_ORDERS = int(os.environ.get("BENCH_REBUILD_ORDERS", "20000"))
BROKER_HOST = os.environ.get("BENCH_BROKER_HOST", "127.0.0.1")
BROKER_PORT = int(os.environ.get("BENCH_BROKER_PORT", "5672"))
BROKER_USER = os.environ.get("BENCH_BROKER_USER", "guest")
BROKER_PASSWORD = os.environ.get("BENCH_BROKER_PASSWORD", "guest")
MANAGEMENT_URL = os.environ.get("BENCH_MANAGEMENT_URL", f"http://{BROKER_HOST}:15672").rstrip("/")
NOTE = "x" * 64  # a small payload, like most domain events


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------- broker: a vhost
class Management:
    """The few RabbitMQ management HTTP API calls the run needs."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url = url
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", self.auth)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def overview(self) -> dict[str, Any]:
        return self.call("GET", "/api/overview")

    def create_vhost(self, vhost: str, user: str) -> None:
        name = urllib.parse.quote(vhost, safe="")
        self.call("PUT", f"/api/vhosts/{name}", {"description": "bench/run.py, deleted at the end of the run"})
        self.call(
            "PUT",
            f"/api/permissions/{name}/{urllib.parse.quote(user, safe='')}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )

    def delete_vhost(self, vhost: str) -> None:
        try:
            self.call("DELETE", f"/api/vhosts/{urllib.parse.quote(vhost, safe='')}")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise


class Rabbitmqctl:
    """The same calls through `rabbitmqctl`, for a broker without its management plugin (a fresh install)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def run(self, *args: str) -> str:
        return subprocess.run([self.path, "-q", *args], check=True, capture_output=True, text=True, timeout=60).stdout

    def overview(self) -> dict[str, Any]:
        status = json.loads(self.run("status", "--formatter", "json"))
        return {"rabbitmq_version": status.get("rabbitmq_version"), "erlang_version": status.get("erlang_version")}

    def create_vhost(self, vhost: str, user: str) -> None:
        self.run("add_vhost", vhost)
        self.run("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    def delete_vhost(self, vhost: str) -> None:
        self.run("delete_vhost", vhost)


def broker_admin() -> tuple[Management | Rabbitmqctl, dict[str, Any]]:
    """The management API if it answers, else rabbitmqctl on this machine; exits saying how to fix it if neither works."""
    management = Management(MANAGEMENT_URL, BROKER_USER, BROKER_PASSWORD)
    try:
        return management, management.overview()
    except (urllib.error.URLError, OSError) as exc:
        api_error = exc
    ctl = shutil.which("rabbitmqctl")
    if ctl is not None:
        admin = Rabbitmqctl(ctl)
        try:
            return admin, admin.overview()
        except (subprocess.SubprocessError, OSError, ValueError):
            pass
    raise SystemExit(
        f"RabbitMQ management API not reachable at {MANAGEMENT_URL} ({api_error}) and rabbitmqctl cannot administer the "
        "broker here; enable the API with `rabbitmq-plugins enable rabbitmq_management`"
    )


# --------------------------------------------------------------------------- database
def fresh_database(stack: ExitStack, workdir: Path) -> str:
    """A DATABASE_URL for a database that exists for this run only."""
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme.startswith("postgres") or scheme == "pgsql":
        import psycopg

        parts = urllib.parse.urlsplit(url)
        name = f"bench_{os.getpid()}_{secrets.token_hex(3)}"
        admin = urllib.parse.urlunsplit(parts._replace(path="/postgres", scheme="postgresql"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log(f"dropped database {name}")

        stack.callback(drop)
        log(f"created PostgreSQL database {name}")
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    path = workdir / "bench.sqlite3"

    def remove() -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    stack.callback(remove)
    return f"sqlite:///{path}"


def as_in_production() -> dict[str, str]:
    """The environment that makes the measured processes run as in production: DEBUG off (no query log, no debug
    cursor), a secret key of their own; plain HTTP on loopback."""
    return {"DEBUG": "False", "SECRET_KEY": secrets.token_urlsafe(50), "SECURE_SSL_REDIRECT": "False"}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- subprocesses
class Processes:
    """Subprocesses of this run, each in a session of its own; stopped by their own ids."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.running.append((name, proc))
        log(f"started {name} (pid {proc.pid}): {' '.join(str(a) for a in argv[1:])}")
        return proc

    def check(self) -> None:
        for name, proc in self.running:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_named(self, name: str) -> None:
        keep = [(n, p) for n, p in self.running if n != name]
        self.running = [(n, p) for n, p in self.running if n == name]
        self.stop_all()
        self.running = keep

    def stop_all(self) -> None:
        for name, proc in reversed(self.running):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    log(f"{name} did not stop on SIGTERM; killing its process group")
            # The process group is the one we created for it (start_new_session): pool children too.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            log(f"stopped {name} (pid {proc.pid}, exit {proc.returncode})")
        self.running.clear()


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, processes: Processes | None = None, interval: float = 0.02
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if processes is not None:
            processes.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# --------------------------------------------------------------------------- the measurements
def queue_arguments() -> dict[str, Any]:
    from django.conf import settings

    return {"x-queue-type": "quorum"} if settings.EVENTS_QUEUE_TYPE == "quorum" else {}


def message_count(connection: Any, queue: str) -> int:
    _, count, _ = connection.default_channel.queue_declare(queue=queue, passive=True)
    return count


def bench_stored_events(n: int, phase: str, fetch: bool = True) -> list[Any]:
    """N unpublished rows as `publish` would write them (bulk-inserted: setup, not measured)."""
    from bench.benchapp.events import BenchPing
    from events import tracing
    from events.models import StoredEvent
    from events.publishing import message_columns

    rows = []
    now = datetime.now(UTC)
    for i in range(n):
        data = BenchPing.validate({"seq": i, "phase": phase, "note": NOTE}, "1.0").model_dump(mode="json")
        context = tracing.next_context()
        columns = {
            "event_id": uuid.uuid4(),
            "topic": BenchPing.topic,
            "event_type": BenchPing.name,
            "event_version": "1.0",
            "source": "bench",
            "subject": f"ping-{i % 100}",
            "sequence": None,
            "timestamp": now,
            "data": data,
            "correlation_id": context.correlation_id,
            "causation_id": "",
            "metadata": {"traceparent": context.traceparent},
        }
        rows.append(StoredEvent(**columns, **message_columns(columns)))
        if len(rows) >= 5000:
            StoredEvent.objects.bulk_create(rows, batch_size=500)
            rows = []
    StoredEvent.objects.bulk_create(rows, batch_size=500)
    if not fetch:
        return []
    return list(StoredEvent.objects.filter(published_at__isnull=True).order_by("position"))


def measure_kombu_publish(broker_url: str, rows: list[Any]) -> dict[str, Any]:
    """(a) kombu Producer.publish, persistent, no confirms, of the very messages the relay sends next."""
    from kombu import Connection, Exchange, Producer, Queue

    messages = []
    for row in rows:
        envelope = row.to_envelope()
        properties = envelope.amqp_properties()
        headers = properties.pop("application_headers")
        messages.append((row.routing_key, envelope.to_json(), headers, properties))
    exchange = Exchange("bench.raw", type="topic", durable=True)
    queue = Queue("bench.raw", exchange, routing_key="bench.#", durable=True, queue_arguments=queue_arguments())
    with Connection(broker_url) as connection:
        queue(connection.default_channel).declare()
        producer = Producer(connection.channel())
        start = time.perf_counter()
        for routing_key, body, headers, properties in messages:
            producer.publish(body, exchange=exchange, routing_key=routing_key, headers=headers, **properties)
        written = time.perf_counter() - start
        # Without confirms "published" means "in the queue": wait until the broker has them all.
        wait_for(lambda: message_count(connection, "bench.raw") >= len(messages), 120, "bench.raw to fill", interval=0.002)
        elapsed = time.perf_counter() - start
        queue(connection.default_channel).delete()
    return {
        "n": len(messages),
        "elapsed_s": elapsed,
        "rate": len(messages) / elapsed,
        "unit": "msgs/s",
        "socket_write_s": written,
        "body_bytes": len(messages[0][1]) if messages else 0,
        "how": "kombu Producer.publish(delivery_mode=2) to topic exchange bench.raw -> one queue of the bus's queue type; "
        "timed until the queue holds all N (passive queue.declare)",
    }


def measure_relay(broker_url: str, n: int, single_active: bool | None = None) -> dict[str, Any]:
    """(b) Relay.pump, the relay's own loop, until the log has nothing left to publish."""
    from django.conf import settings
    from kombu import Connection

    from events import topology
    from events.models import StoredEvent
    from events.relay import ConfirmingPublisher, Relay

    broker_time = [0.0]

    class TimedPublisher(ConfirmingPublisher):
        def send(self, messages):  # noqa: ANN001, ANN201
            started = time.perf_counter()
            try:
                return super().send(messages)
            finally:
                broker_time[0] += time.perf_counter() - started

        def wait(self, max_in_flight, timeout):  # noqa: ANN001, ANN201
            started = time.perf_counter()
            try:
                return super().wait(max_in_flight, timeout)
            finally:
                broker_time[0] += time.perf_counter() - started

    relay = Relay(broker_url=broker_url, wake_address="", single_active=single_active)
    with Connection(broker_url) as connection:
        topology.declare(connection)
        publisher = TimedPublisher(connection)
        profiler = None
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start = time.perf_counter()
        with relay.marks_alongside():  # as `Relay.run` does: marks written while the next batch goes out
            relay.pump(publisher)
        elapsed = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
            RESULTS.mkdir(parents=True, exist_ok=True)
            profiler.dump_stats(RESULTS / "relay.pstats")
        left = StoredEvent.objects.filter(published_at__isnull=True).count()
        if left:
            raise RuntimeError(f"relay left {left} events unpublished")
        queued = wait_for(
            lambda: message_count(connection, "bench.events") >= n and message_count(connection, "bench.events"),
            60,
            "bench.events to hold the relayed events",
        )
        connection.default_channel.queue_purge("bench.events")  # the worker of (c)/(d) must not see them
    return {
        "n": n,
        "elapsed_s": elapsed,
        "rate": n / elapsed,
        "unit": "events/s",
        "batches": -(-n // relay.batch_size),
        "batch_size": relay.batch_size,
        "publish_and_confirm_s": broker_time[0],
        "database_and_encoding_s": elapsed - broker_time[0],
        "queued": queued,
        "single_active": relay.single_active,
        "how": f"Relay.pump (one batch in flight while the next is claimed; on PostgreSQL marks written alongside, as "
        f"Relay.run does) over {n} bulk-inserted rows "
        f"(EVENTS_RELAY_BATCH_SIZE={settings.EVENTS_RELAY_BATCH_SIZE}), exchange events -> bench.events",
    }


def marker_time(name: str) -> float | None:
    from bench.benchapp.models import BenchMarker

    return BenchMarker.objects.filter(name=name).values_list("at", flat=True).first()


def _producer(kind: str, count: int, index: int, tag: str, barrier: Any) -> None:
    """One producer process of (c) or (d): set up, wait for the others, then `.delay()` or `publish()` `count` times."""
    import django

    django.setup()
    import project.celery  # noqa: F401 - the app that `.delay()` publishes with
    from bench.benchapp.tasks import bench_noop

    if kind == "celery":
        bench_noop.delay(marker=f"ready-{tag}-{index}")  # the connection is open before the clock starts
        barrier.wait()
        for _ in range(count - 1):
            bench_noop.delay()
        bench_noop.delay(marker=f"done-{tag}-{index}")
    else:
        publish_pings(1, "warmup")
        barrier.wait()
        publish_pings(count, "throughput", txn_size=TXN_SIZE, first_seq=index * count)
    from django.db import connections

    connections.close_all()


def run_producers(kind: str, n: int, producers: int, tag: str) -> tuple[float, float]:
    """`producers` processes sharing N; returns (the time they were released, seconds until the last finished)."""
    import multiprocessing

    from django.db import connections

    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no inherited connections
    barrier = context.Barrier(producers + 1)
    share = [n // producers + (1 if k < n % producers else 0) for k in range(producers)]
    procs = [context.Process(target=_producer, args=(kind, share[k], k, tag, barrier), daemon=True) for k in range(producers)]
    connections.close_all()
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)
    start = time.time()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a producer process of ({kind}) exited with {proc.exitcode}")
    return start, time.time() - start


def measure_celery(n: int, processes: Processes, producers: int) -> dict[str, Any]:
    """(c) `.delay()` N trivial tasks from `producers` processes; done when each one's last task (FIFO, -c 1) has run."""
    from bench.benchapp.tasks import bench_noop

    bench_noop.delay(marker="warmup-c")
    wait_for(lambda: marker_time("warmup-c"), 120, "the worker to start", processes)
    tag = f"c{producers}-{secrets.token_hex(2)}"
    start, enqueued = run_producers("celery", n, producers, tag)
    timeout = max(120.0, n / 20)
    names = [f"done-{tag}-{k}" for k in range(producers)]
    done = wait_for(
        lambda: all(marker_time(name) for name in names) and max(marker_time(name) for name in names),
        timeout,
        f"{n} tasks to complete",
        processes,
        interval=0.05,
    )
    elapsed = done - start
    return {
        "n": n,
        "producers": producers,
        "elapsed_s": elapsed,
        "rate": n / elapsed,
        "unit": "tasks/s",
        "enqueue_rate": n / enqueued,
        "how": f"bench_noop.delay() x N from {producers} producer process(es) (confirm_publish as configured), released "
        "together; each one's last task records the time it ran; done at the latest of those (one FIFO queue, one "
        "worker `celery worker -Q bench -c 1`, prefork, 1 child)",
    }


def inbox_since(after_id: int) -> Any:
    from bench.benchapp.handlers import bench_ping_ignore
    from events.models import InboxEntry

    handler = f"{bench_ping_ignore.__module__}.{bench_ping_ignore.__qualname__}"
    return InboxEntry.objects.filter(id__gt=after_id, handler=handler)


def last_inbox_id() -> int:
    from events.models import InboxEntry

    return InboxEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


def publish_pings(count: int, phase: str, txn_size: int = 1, interval: float = 0.0, first_seq: int = 0) -> list[str]:
    from django.db import transaction

    from bench.benchapp.events import BenchPing
    from events.publishing import publish

    ids = []
    start = time.perf_counter()
    for first in range(0, count, txn_size):
        with transaction.atomic():
            for i in range(first, min(count, first + txn_size)):
                seq = first_seq + i
                stored = publish(BenchPing, {"seq": seq, "phase": phase, "note": NOTE}, subject=f"ping-{seq % 100}")
                ids.append(str(stored.event_id))
        if interval:
            pause = start + (first + txn_size) * interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    return ids


def start_bus_relay(processes: Processes) -> None:
    """`manage.py bench_relay`: the relay with the hop recording of bench/benchapp/hops.py."""
    if not any(name == "relay" for name, _ in processes.running):
        processes.start("relay", [str(PYTHON), "manage.py", "bench_relay"])
    before = last_inbox_id()
    publish_pings(1, "warmup")
    wait_for(lambda: inbox_since(before).count() >= 1, 120, "the relay and the consumer to start", processes)


def last_position() -> int:
    from events.models import StoredEvent

    return StoredEvent.objects.order_by("-position").values_list("position", flat=True).first() or 0


def measure_bus(n: int, processes: Processes, producers: int) -> dict[str, Any]:
    """(d) events.publish in transactions from `producers` processes -> relay -> broker -> consumer step -> handler."""
    from events.models import StoredEvent

    start_bus_relay(processes)
    before, after_position = last_inbox_id(), last_position()
    start, published = run_producers("bus", n, producers, f"d{producers}")
    timeout = max(120.0, n / 20)
    wait_for(lambda: inbox_since(before).count() >= n, timeout, f"{n} events to be handled", processes, interval=0.05)
    last = max(at.timestamp() for at in inbox_since(before).values_list("processed_at", flat=True))
    mine = StoredEvent.objects.filter(position__gt=after_position, data__phase="throughput")
    relayed = max(at.timestamp() for at in marked(mine, processes).values_list("published_at", flat=True))
    elapsed = last - start
    return {
        "n": n,
        "producers": producers,
        "elapsed_s": elapsed,
        "rate": n / elapsed,
        "unit": "events/s",
        "publish_rate": n / published,
        "events_per_transaction": TXN_SIZE,
        "last_commit_s": published,
        "last_relayed_s": relayed - start,
        "last_handled_s": elapsed,
        "how": f"events.publish() in transactions of BENCH_TXN_SIZE from {producers} producer process(es), released "
        "together -> the relay -> bench.events -> consumer step of the same worker as (c) -> events.handle tasks -> "
        "one no-op handler; timed from the release of the producers to the last InboxEntry.processed_at",
    }


def marked(events: Any, processes: Processes) -> Any:
    """`events` (a query of the event log), once the relay has marked each published. An event can be handled before
    the relay's mark of it commits (marks linger up to 20 ms to be written together): read `published_at` after this."""
    wait_for(lambda: not events.filter(published_at__isnull=True).exists(), 60, "the relay's marks", processes, interval=0.05)
    return events


def measure_latency(processes: Processes) -> dict[str, Any]:
    """Commit -> handler at light load: one event every BENCH_LATENCY_INTERVAL_MS from this process."""
    start_bus_relay(processes)
    time.sleep(1.0)  # let the relay and the worker go idle
    before = last_inbox_id()
    ids = publish_pings(LATENCY_EVENTS, "latency", interval=LATENCY_INTERVAL)
    wait_for(lambda: inbox_since(before).count() >= len(ids), 120, "the latency events to be handled", processes)
    from events.models import StoredEvent

    marked(StoredEvent.objects.filter(event_id__in=ids), processes)
    latency = compute_latencies(ids, before)
    latency["event_ids"] = ids  # replaced by the hops once the relay and the worker have written them
    latency["how"] = (
        f"{LATENCY_EVENTS} events, one transaction each, one every {LATENCY_INTERVAL * 1000:.0f} ms; "
        "latency = InboxEntry.processed_at - StoredEvent.timestamp (set just before the commit)"
    )
    return latency


HOPS = ("commit", "relay_read", "published", "consumer", "handler_task", "inbox")


def add_hops(latency: dict[str, Any], workdir: Path) -> None:
    """Time per hop of the latency events: commit -> relay read -> published -> consumer -> handler task -> inbox."""
    from bench.benchapp import hops
    from events.models import StoredEvent

    ids = latency.pop("event_ids", [])
    by_position, by_event = hops.load(workdir)
    handled = dict(inbox_since(0).filter(event_id__in=ids).values_list("event_id", "processed_at"))
    times: dict[str, dict[str, float]] = {}
    stored = StoredEvent.objects.filter(event_id__in=ids).values_list("position", "event_id", "timestamp")
    for position, event_id, stamp in stored:
        key = str(event_id)
        times[key] = {"commit": stamp.timestamp(), **by_position.get(str(position), {}), **by_event.get(key, {})}
        if key in handled:
            times[key]["inbox"] = handled[key].timestamp()
    complete = [t for t in times.values() if all(h in t for h in HOPS)]
    latency["hops_complete"] = len(complete)
    latency["hops_ms"] = {}
    for a, b in zip(HOPS, HOPS[1:], strict=False):
        values = [(t[b] - t[a]) * 1000 for t in complete]
        if values:
            latency["hops_ms"][f"{a} -> {b}"] = {"p50": percentile(values, 50), "p99": percentile(values, 99)}


def seed_history(rows: int) -> float:
    """`rows` already-published events in one INSERT … SELECT (generate_series / a recursive CTE), then (PostgreSQL)
    `VACUUM (ANALYZE)` of the log, or (SQLite) `ANALYZE`; returns seconds."""
    from django.db import connection

    from bench.benchapp.events import BenchPing
    from events.models import StoredEvent

    table = connection.ops.quote_name(StoredEvent._meta.db_table)
    columns = (
        'event_id, topic, event_type, event_version, source, subject, "sequence", "timestamp", data, correlation_id, '
        "causation_id, metadata, published_at, rejected_reason, claimed_by, claimed_until, body"
    )
    then = connection.ops.adapt_datetimefield_value(datetime.now(UTC).replace(microsecond=0))
    params = [BenchPing.topic, BenchPing.name, then, then, rows]
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT gen_random_uuid(), %s, %s, '1.0', 'bench', 'history-' || (g %% 1000), "
                "NULL, %s, jsonb_build_object('seq', g, 'phase', 'history', 'note', 'x'), '', '', '{}'::jsonb, %s, '', '', "
                "NULL, NULL FROM generate_series(1, %s) AS g",
                params,
            )
            # What autovacuum does on a server that runs it: the row versions the earlier figures' marks left behind
            # (in every index of the log, the partial one the lease reads included) are cleared before (h).
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        else:
            cursor.execute(
                f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < %s) "
                f"INSERT INTO {table} ({columns}) SELECT lower(hex(randomblob(16))), %s, %s, '1.0', 'bench', "
                "'history-' || (x %% 1000), NULL, %s, json_object('seq', x, 'phase', 'history', 'note', 'x'), '', '', '{}', "
                "%s, '', '', NULL, NULL FROM g",
                [rows, *params[:4]],
            )
            cursor.execute("ANALYZE")
    return time.perf_counter() - started


def measure_history(broker_url: str, n: int, history: int) -> dict[str, Any]:
    """(h) (b) again, with `history` already-published rows in the log before the N new ones."""
    from events.models import StoredEvent

    seeded = seed_history(history)
    published = StoredEvent.objects.filter(published_at__isnull=False).count()
    rounds = []
    for k in range(ROUNDS):
        log(f"(h) seeded {history:,} published rows in {seeded:.1f}s; relaying {n} new ones, round {k + 1} of {ROUNDS} ...")
        bench_stored_events(n, "history-relay", fetch=False)
        rounds.append(measure_relay(broker_url, n))
    figure = median_round(rounds)
    figure["history_rows"] = published
    figure["seed_s"] = seeded
    figure["how"] = (
        f"as (b), with {history:,} published rows (one INSERT … SELECT) in the log first; the median of {ROUNDS} rounds"
    )
    return figure


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of median rate (of an even number, the lower middle one), with the rates of all rounds."""
    ranked = sorted(rounds, key=lambda figure: figure["rate"])
    figure = dict(ranked[(len(ranked) - 1) // 2])
    figure["rounds"] = [round(r["rate"], 1) for r in rounds]
    if len(rounds) > 1 and "median of" not in figure["how"]:
        figure["how"] += f"; the median of {len(rounds)} rounds"
    return figure


def rss_kib(pid: int) -> tuple[int, int]:
    """(resident now, peak resident) of a process, in KiB, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [pid]
    if children.exists():
        for child in children.read_text().split():
            found += process_tree(int(child))
    return found


def measure_backlog(n: int, processes: Processes) -> dict[str, Any]:
    """(m) memory of the relay and the worker while a backlog of N events drains (RSS sampled every 0.5 s)."""
    processes.stop_named("relay")
    before = last_inbox_id()
    bench_stored_events(n, "backlog", fetch=False)
    relay = processes.start("relay", [str(PYTHON), "manage.py", "relay"])
    worker = next(proc for name, proc in processes.running if name == "worker")
    samples: list[dict[str, Any]] = []
    start = time.time()

    def sample() -> bool:
        done = inbox_since(before).count()
        row: dict[str, Any] = {"t": round(time.time() - start, 1), "handled": done, "relay_kib": rss_kib(relay.pid)[0]}
        row["worker_kib"] = {str(pid): rss_kib(pid)[0] for pid in process_tree(worker.pid)}
        samples.append(row)
        return done >= n

    wait_for(sample, max(300.0, n / 20), f"a backlog of {n} events to drain", processes, interval=0.5)
    elapsed = time.time() - start
    relay_peak = rss_kib(relay.pid)[1]
    worker_peak = {str(pid): rss_kib(pid)[1] for pid in process_tree(worker.pid)}
    early = samples[min(len(samples) - 1, 4)]
    return {
        "n": n,
        "elapsed_s": elapsed,
        "rate": n / elapsed,
        "unit": "events/s",
        "relay_rss_kib": {"after_2s": early["relay_kib"], "end": samples[-1]["relay_kib"], "peak": relay_peak},
        "worker_rss_kib": {
            pid: {"after_2s": early["worker_kib"].get(pid), "end": samples[-1]["worker_kib"].get(pid), "peak": peak}
            for pid, peak in worker_peak.items()
        },
        "samples": samples[:: max(1, len(samples) // 60)],
        "how": f"{n} events bulk-inserted unpublished with the relay stopped; then `manage.py relay` and the worker of "
        "(c)/(d) drain them; RSS of each process (VmRSS) every 0.5 s and its peak (VmHWM) at the end",
    }


def measure_scaling(n: int, processes: Processes, env: dict[str, str], curve: list[dict[str, Any]]) -> None:
    """(s) events/s end to end with 1, 2, 4 worker processes for the one service, and 1 or 2 relays (PostgreSQL)."""
    from django.db import connection

    relays_tried = (1, 2) if connection.vendor == "postgresql" else (1,)
    for relays in relays_tried:
        for workers in SCALE_WORKERS:
            processes.stop_all()
            for k in range(relays):
                processes.start(f"scale-relay-{k}", [str(PYTHON), "manage.py", "relay"])
            for k in range(workers):
                processes.start(
                    f"scale-worker-{k}",
                    [str(CELERY), "-A", "project", "worker", "-Q", "bench", "-c", "1", "-P", "prefork",
                     "-n", f"bench-scale-{k}-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "-l", env["LOG_LEVEL"]],
                )  # fmt: skip
            before = last_inbox_id()
            publish_pings(workers * 2, "warmup")
            wait_for(lambda b=before, w=workers: inbox_since(b).count() >= w * 2, 180, "the scaled workers to start", processes)
            time.sleep(1.0)
            before = last_inbox_id()
            start, _ = run_producers("bus", n, PRODUCERS, f"s{relays}{workers}")
            wait_for(lambda b=before: inbox_since(b).count() >= n, max(120.0, n / 10), f"{n} events", processes, interval=0.05)
            last = max(at.timestamp() for at in inbox_since(before).values_list("processed_at", flat=True))
            curve.append({"relays": relays, "workers": workers, "n": n, "rate": n / (last - start), "unit": "events/s"})
            log(f"(s) {relays} relay(s), {workers} worker process(es): {curve[-1]['rate']:,.0f} events/s")
    processes.stop_all()


def hire_employees(n: int) -> None:
    """N users on the payroll (bulk-inserted: setup, not measured)."""
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from payroll.models import Employee

    User = get_user_model()
    for first in range(0, n, 2000):
        users = User.objects.bulk_create(
            [User(username=f"bench{i}", email=f"bench{i}@example.com", password="!") for i in range(first, min(n, first + 2000))]
        )
        if users and users[0].pk is None:
            users = list(User.objects.filter(username__in=[u.username for u in users]))
        Employee.objects.bulk_create([Employee(user=u, monthly_salary=Decimal("3000.00"), currency="EUR") for u in users])


def measure_payroll(n: int, processes: Processes) -> dict[str, Any]:
    """(p) a payroll run of N employees on the payroll worker, until the last salary-credited notice."""
    from events.models import InboxEntry, StoredEvent
    from notifications.models import Notification
    from payroll.models import PayrollRun
    from payroll.periods import format_period, last_ended_period
    from payroll.schedule import month_before
    from payroll.tasks import run_payroll_for_period

    if not any(name == "relay" for name, _ in processes.running):
        processes.start("relay", [str(PYTHON), "manage.py", "relay"])
    processes.start(
        "worker-payroll",
        [str(CELERY), "-A", "project", "worker", "-Q", "payroll,notifications", "-c", "2", "-P", "prefork",
         "-n", f"bench-payroll-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "-l", os.environ["LOG_LEVEL"]],
    )  # fmt: skip
    period = last_ended_period()
    warmup = month_before(month_before(period))  # nobody to pay yet: only shows that the worker is up
    run_payroll_for_period.delay(format_period(warmup), "admin")
    wait_for(lambda: PayrollRun.objects.filter(period=warmup, status="completed").exists(), 120, "the payroll worker", processes)
    hire_employees(n)

    start = time.time()
    run_payroll_for_period.delay(format_period(period), "admin")
    notices = Notification.objects.filter(kind="salary-credited")
    wait_for(lambda: notices.count() >= n, max(300.0, n / 5), f"{n} salary-credited notices", processes, interval=0.1)
    last_notice = max(at.timestamp() for at in notices.values_list("created_at", flat=True))
    run = PayrollRun.objects.get(period=period)
    events = StoredEvent.objects.filter(event_type="SalaryCredited")
    first_event = min(at.timestamp() for at in events.values_list("timestamp", flat=True))
    last_published = max(at.timestamp() for at in marked(events, processes).values_list("published_at", flat=True))
    handled = InboxEntry.objects.filter(handler="notifications.handlers.send_salary_credited_notice")
    last_handled = max(at.timestamp() for at in handled.values_list("processed_at", flat=True))
    elapsed = last_notice - start
    run_s = (run.finished_at - run.started_at).total_seconds()
    return {
        "n": n,
        "elapsed_s": elapsed,
        "rate": n / elapsed,
        "unit": "employees/s",
        "run_s": run_s,
        "payslips_and_events_written_per_s": n / run_s if run_s else None,
        "run_finished_s": run.finished_at.timestamp() - start,
        "last_relayed_s": last_published - start,
        "last_notice_s": elapsed,
        "bus_events_per_s": n / (last_handled - first_event),
        "relay_events_per_s": n / (last_published - first_event),
        "chunk_size": int(os.environ.get("PAYROLL_CHUNK_SIZE", "500")),
        "how": "run_payroll_for_period.delay() -> payroll worker (-Q payroll,notifications -c 2): one transaction per "
        "chunk of payslips with their SalaryCredited events -> `manage.py relay` -> notifications.events -> consumer -> "
        "salary-credited notice; employees/s from the .delay() to the last Notification.created_at; bus events/s from "
        "the first event's timestamp to the last handled (InboxEntry.processed_at)",
    }


def compute_latencies(ids: list[str], after_id: int) -> dict[str, Any]:
    from events.models import StoredEvent

    handled = dict(inbox_since(after_id).values_list("event_id", "processed_at"))
    stored = {
        str(k): (ts, pub)
        for k, ts, pub in StoredEvent.objects.filter(event_id__in=ids).values_list("event_id", "timestamp", "published_at")
    }
    values = [(handled[i] - stored[i][0]).total_seconds() * 1000 for i in ids]
    to_relayed = [(stored[i][1] - stored[i][0]).total_seconds() * 1000 for i in ids]
    relayed_to_handled = [(handled[i] - stored[i][1]).total_seconds() * 1000 for i in ids]
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values),
        "mean_ms": sum(values) / len(values),
        # Where the time goes: commit -> marked published (relay, confirm included) -> handler ran.
        "commit_to_published_p50_ms": percentile(to_relayed, 50),
        "commit_to_published_p99_ms": percentile(to_relayed, 99),
        "published_to_handled_p50_ms": percentile(relayed_to_handled, 50),
        "published_to_handled_p99_ms": percentile(relayed_to_handled, 99),
        "series_ms": [[round(x, 1), round(y, 1)] for x, y in zip(to_relayed, relayed_to_handled, strict=True)],
    }


def add_worker_stats(figures: dict[str, Any], workdir: Path) -> None:
    """Tasks run and events carried, as counted inside the worker (bench/benchapp/worker_stats.py)."""
    tasks: dict[str, int] = {}
    events: dict[str, int] = {}
    for path in workdir.glob("worker-*.json"):
        stats = json.loads(path.read_text())
        for name, count in stats["tasks"].items():
            tasks[name] = tasks.get(name, 0) + count
        for name, count in stats["events"].items():
            events[name] = events.get(name, 0) + count
    if "c" in figures:
        figures["c"]["tasks_run"] = tasks.get("bench.noop")
    for key, phase in (("d", "throughput"), ("latency", "latency")):
        name = f"events.handle:{phase}"
        if key in figures and tasks.get(name):
            figures[key]["handler_tasks"] = tasks[name]
            figures[key]["events_per_handler_task"] = events.get(name, 0) / tasks[name]


# --------------------------------------------------------------------------- report
def machine_info(overview: dict[str, Any]) -> dict[str, Any]:
    import amqp
    import celery
    import django
    import kombu
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("select sqlite_version()" if connection.vendor == "sqlite" else "show server_version")
        db_version = cursor.fetchone()[0]
        autovacuum = None
        if connection.vendor == "postgresql":
            cursor.execute("show autovacuum")
            autovacuum = cursor.fetchone()[0]
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "rabbitmq": overview.get("rabbitmq_version"),
        "erlang": overview.get("erlang_version"),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "amqp": amqp.__version__,
        "django": django.get_version(),
        "db_vendor": connection.vendor,
        "db_version": db_version,
        "autovacuum": autovacuum,
        "queue_type": settings.EVENTS_QUEUE_TYPE,
        "settings_module": os.environ.get("DJANGO_SETTINGS_MODULE"),
        # Other work on the machine skews every figure: look here first when two runs disagree.
        "load_average_at_start": os.getloadavg(),
    }


def report(results: dict[str, Any]) -> None:
    figures = results["figures"]
    a, b, c, d, lat, pay = (figures.get(k) for k in ("a", "b", "c", "d", "latency", "p"))
    saga, saga_lat, rebuild = (figures.get(k) for k in ("saga", "saga_latency", "rebuild"))
    hist, backlog, scaling = (figures.get(k) for k in ("h", "backlog", "scaling"))

    def missing(phase: str) -> str:
        return "failed" if phase in PHASES else "not run"

    def rate(fig: dict[str, Any] | None, phase: str) -> str:
        return f"{fig['rate']:,.0f} {fig['unit']}" if fig else missing(phase)

    def ratio(x: dict[str, Any] | None, y: dict[str, Any] | None) -> float | None:
        return x["rate"] / y["rate"] if x and y else None

    b1 = figures.get("b1")
    rb, rb1, rd, rh = ratio(b, a), ratio(b1, a), ratio(d, c), ratio(hist, b)
    lat_met = None if lat is None else lat["p50_ms"] <= 10 and lat["p99_ms"] <= 30
    yes = {True: "yes", False: "no", None: "n/a"}
    rows = [
        ("(a) kombu publish, no confirms", rate(a, "a"), "baseline", "", "", ""),
        ("(b) relay publish, confirms", rate(b, "b"), f"{rb:.2f} x (a)" if rb else "", "", ">= 1.00 x (a)",
         yes[None if rb is None else rb >= 1.0]),
        ("(b) single active relay", rate(b1, "b") if b1 else "PostgreSQL only", f"{rb1:.2f} x (a)" if rb1 else "", "",
         ">= 1.00 x (a)", yes[None if rb1 is None else rb1 >= 1.0]),
        (f"(c) celery .delay -> done, {PRODUCERS}p", rate(c, "c"), "baseline", "", "", ""),
    ]  # fmt: skip
    for producers in PRODUCERS_ALSO:
        cx = figures.get(f"c{producers}")
        rows.append((f"(c) celery .delay -> done, {producers}p", rate(cx, "c"), "", "", "", ""))
    rows.append(
        (f"(d) bus end to end, {PRODUCERS}p", rate(d, "d"), f"{rd:.2f} x (c)" if rd else "", "", ">= 1.50 x (c)",
         yes[None if rd is None else rd >= 1.5])
    )  # fmt: skip
    for producers in PRODUCERS_ALSO:
        dx, cx = figures.get(f"d{producers}"), figures.get(f"c{producers}")
        rx = ratio(dx, cx)
        shown = f"{rx:.2f} x (c {producers}p)" if rx else ""
        rows.append((f"(d) bus end to end, {producers}p", rate(dx, "d"), shown, "", "", ""))
    rows += [
        ("(d) commit -> handler latency", "", "", f"{lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} ms" if lat else missing("d"),
         "<= 10 / 30 ms", yes[lat_met]),
        ("(h) relay, 1M rows of history", rate(hist, "h"), f"{rh:.2f} x (b)" if rh else "", "", ">= 0.90 x (b)",
         yes[None if rh is None else rh >= 0.9]),
        ("(m) backlog drained, peak RSS", rate(backlog, "m"), "",
         f"relay {backlog['relay_rss_kib']['peak'] / 1024:.0f} MiB" if backlog else "", "flat", ""),
        ("(p) payroll run -> last notice", rate(pay, "p"), "", "", "", ""),
        ("(p) bus during the payroll", f"{pay['bus_events_per_s']:,.0f} events/s" if pay else missing("p"), "", "", "", ""),
        ("(e) saga placed -> confirmed", rate(saga, "e"), "",
         f"{saga['latency_under_load']['p50_ms']:.0f} / {saga['latency_under_load']['p99_ms']:.0f} ms" if saga else "", "", ""),
        ("(e) placed -> confirmed, light", "", "",
         f"{saga_lat['p50_ms']:.0f} / {saga_lat['p99_ms']:.0f} ms" if saga_lat else missing("e"), "", ""),
        ("(f) projection rebuild", rate(rebuild, "f"), f"{rebuild['ratio']:.2f} x raw read" if rebuild else "", "",
         ">= 0.50 x raw read", yes[None if rebuild is None else rebuild["ratio"] >= 0.5]),
    ]  # fmt: skip
    for point in scaling or []:
        rows.append((f"(s) {point['relays']} relay, {point['workers']} worker proc", rate(point, "s"), "", "", "", ""))
    header = ("figure", "rate", "ratio", "p50 / p99", "target", "meets target")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print()
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    measured = [(key, figures[key]["rounds"]) for key in ("a", "b", "b1", "h") if figures.get(key, {}).get("rounds")]
    if measured:
        each = "; ".join(f"({key}) " + ", ".join(f"{r:,.0f}" for r in rates) for key, rates in measured)
        print(f"\nrounds (the median is shown), per second: {each}")
    if lat and lat.get("hops_ms"):
        hops = "; ".join(f"{k} {v['p50']:.1f} / {v['p99']:.1f}" for k, v in lat["hops_ms"].items())
        print(f"\nlatency per hop, p50 / p99 ms: {hops}")
    if backlog:
        workers = ", ".join(f"{v['peak'] / 1024:.0f}" for v in backlog["worker_rss_kib"].values())
        r = backlog["relay_rss_kib"]
        print(
            f"backlog RSS MiB: relay {r['after_2s'] / 1024:.0f} after 2 s -> {r['end'] / 1024:.0f} at the end "
            f"(peak {r['peak'] / 1024:.0f}); worker processes peak {workers}"
        )
    m = results["machine"]
    print(
        f"\nN={results['n']}  {m.get('cpu_count')} CPUs  Python {m.get('python')}  RabbitMQ {m.get('rabbitmq')}  "
        f"{m.get('db_vendor')} {m.get('db_version')}  {m.get('queue_type')} queues  "
        f"celery {m.get('celery')} kombu {m.get('kombu')} django {m.get('django')}"
    )
    results["targets"] = {
        "b_over_a": {"value": rb, "target": 1.0, "met": None if rb is None else rb >= 1.0},
        "d_over_c": {"value": rd, "target": 1.5, "met": None if rd is None else rd >= 1.5, "producers": PRODUCERS},
        "latency_ms": {
            "value": [lat["p50_ms"], lat["p99_ms"]] if lat else None,
            "target": [10, 30],
            "met": lat_met,
        },
        "history_over_b": {"value": rh, "target": 0.9, "met": None if rh is None else rh >= 0.9},
        "rebuild_over_raw": {
            "value": rebuild["ratio"] if rebuild else None,
            "target": 0.5,
            "met": None if rebuild is None else rebuild["ratio"] >= 0.5,
        },
    }


# --------------------------------------------------------------------------- main
def main() -> int:
    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    management, overview = broker_admin()
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {os.getloadavg()[0]:.2f} before the run; other work will skew the figures")
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    vhost = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
    results: dict[str, Any] = {
        "n": N,
        "phases": "".join(sorted(PHASES)),
        "started_at": datetime.now(UTC).isoformat(),
        "figures": {},
        "machine": {},
    }
    failed = False
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        management.create_vhost(vhost, BROKER_USER)
        stack.callback(lambda: (management.delete_vhost(vhost), log(f"deleted vhost {vhost}")))
        log(f"created vhost {vhost}")
        broker_url = f"amqp://{BROKER_USER}:{BROKER_PASSWORD}@{BROKER_HOST}:{BROKER_PORT}/{urllib.parse.quote(vhost, safe='')}"
        env = {
            **os.environ,
            # Another module (that imports bench.settings) to try a settings change against the same run.
            "DJANGO_SETTINGS_MODULE": os.environ.get("BENCH_SETTINGS_MODULE", "bench.settings"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            "DATABASE_URL": fresh_database(stack, workdir),
            "CELERY_BROKER_URL": broker_url,
            "EVENTS_RELAY_WAKE_ADDRESS": f"127.0.0.1:{free_udp_port()}",  # not the port of a relay of `make run`
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "BENCH_WORKDIR": str(workdir),
            **as_in_production(),
        }
        os.environ.update(env)
        processes = Processes(env, workdir)
        stack.callback(processes.stop_all)
        try:
            subprocess.run([str(PYTHON), "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
            import django

            django.setup()
            from django.db import connections

            stack.callback(connections.close_all)  # before the database is dropped or removed
            import project.celery  # noqa: F401 - the app that `.delay()` publishes with

            results["machine"] = machine_info(overview)
            log(f"N={N}; database {results['machine']['db_vendor']}; broker {BROKER_HOST}:{BROKER_PORT} vhost {vhost}")

            if PHASES & {"a", "b"}:
                rows = bench_stored_events(N, "relay")
                rounds: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "b1": []}
                for k in range(ROUNDS):
                    if "a" in PHASES:
                        log(f"(a) kombu publish without confirms, round {k + 1} of {ROUNDS} ...")
                        rounds["a"].append(measure_kombu_publish(broker_url, rows))
                    if "b" in PHASES:
                        log(f"(b) relay publish with confirms, round {k + 1} of {ROUNDS} ...")
                        if k:
                            bench_stored_events(N, "relay", fetch=False)
                        rounds["b"].append(measure_relay(broker_url, N, single_active=False))
                        if results["machine"]["db_vendor"] == "postgresql":
                            log(f"(b) the single active relay (EVENTS_RELAY_SINGLE_ACTIVE), round {k + 1} of {ROUNDS} ...")
                            bench_stored_events(N, "relay", fetch=False)
                            rounds["b1"].append(measure_relay(broker_url, N, single_active=True))
                for key, measured in rounds.items():
                    if measured:
                        results["figures"][key] = median_round(measured)
            if PHASES & {"c", "d", "m"}:
                processes.start(
                    "worker",
                    [
                        str(CELERY),
                        "-A",
                        "project",
                        "worker",
                        "-Q",
                        "bench",
                        "-c",
                        "1",
                        "-P",
                        "prefork",
                        "-n",
                        f"bench-{os.getpid()}@%h",
                        "--without-gossip",
                        "--without-mingle",
                        "-l",
                        env["LOG_LEVEL"],
                    ],
                )
            if "c" in PHASES:
                for producers in [PRODUCERS, *PRODUCERS_ALSO]:
                    key = "c" if producers == PRODUCERS else f"c{producers}"
                    log(f"({key}) celery .delay() from {producers} producer process(es) until the worker has run them all ...")
                    results["figures"][key] = measure_celery(N, processes, producers)
            if "d" in PHASES:
                for producers in [PRODUCERS, *PRODUCERS_ALSO]:
                    key = "d" if producers == PRODUCERS else f"d{producers}"
                    log(f"({key}) the bus end to end from {producers} producer process(es) ...")
                    results["figures"][key] = measure_bus(N, processes, producers)
                log("(d) latency at light load ...")
                results["figures"]["latency"] = measure_latency(processes)
            if "m" in PHASES:
                log(f"(m) a backlog of {BACKLOG:,} events drains; relay and worker memory ...")
                results["figures"]["backlog"] = measure_backlog(BACKLOG, processes)
            if "p" in PHASES:
                log(f"(p) a payroll run of {N} employees, to the last salary-credited notice ...")
                results["figures"]["p"] = measure_payroll(N, processes)
            if "e" in PHASES:
                from bench import commerce

                if not any(name == "relay" for name, _ in processes.running):
                    processes.start("relay", [str(PYTHON), "manage.py", "relay"])

                def start_commerce_worker(extra: dict[str, str]) -> None:
                    processes.env = {**processes.env, **extra}
                    queues = "orders,payments,inventory,shipping,notifications"
                    argv = [str(CELERY), "-A", "project", "worker", "-Q", queues, "-c", "2", "-n", f"commerce-{os.getpid()}@%h"]
                    processes.start("commerce-worker", [*argv, "--without-gossip", "--without-mingle", "-l", env["LOG_LEVEL"]])

                log(f"(e) the checkout saga: {SAGA_N} orders, then {SAGA_LIGHT} at light load ...")
                results["figures"]["saga"], results["figures"]["saga_latency"] = commerce.measure_saga(
                    processes, start_commerce_worker, wait_for, SAGA_N, SAGA_LIGHT, SAGA_LIGHT_INTERVAL
                )
            if "f" in PHASES:
                from bench import commerce

                log(f"(f) projection rebuild over {REBUILD_ORDERS} synthetic orders and a raw read of the same rows ...")
                results["figures"]["rebuild"] = commerce.measure_rebuild(REBUILD_ORDERS)
            if "s" in PHASES:
                log(f"(s) the scaling curve: {SCALE_N} events per point ...")
                results["figures"]["scaling"] = []  # each point as it is measured: kept if a later one fails
                measure_scaling(SCALE_N, processes, env, results["figures"]["scaling"])
            processes.stop_all()
            if "h" in PHASES:
                log(f"(h) the relay with {HISTORY_ROWS:,} published rows in the log ...")
                results["figures"]["h"] = measure_history(broker_url, N, HISTORY_ROWS)

        except (Exception, KeyboardInterrupt) as exc:
            failed = True
            results["error"] = f"{type(exc).__name__}: {exc}"
            log(f"FAILED: {results['error']}")
            for name, _ in processes.running:
                tail = processes.tail(name)
                if tail:
                    print(f"--- last lines of {name}.log ---\n{tail}", file=sys.stderr)
        finally:
            processes.stop_all()  # the relay and the workers write their counts and hops as they stop
            try:
                add_worker_stats(results["figures"], workdir)
                if "latency" in results["figures"]:
                    add_hops(results["figures"]["latency"], workdir)
            except Exception as exc:  # a failed run still reports what it measured
                log(f"could not read the workers' counts or hops: {type(exc).__name__}: {exc}")
            results["finished_at"] = datetime.now(UTC).isoformat()
            results["machine"]["load_average_at_end"] = os.getloadavg()
            if results["machine"]:
                report(results)
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
            log(f"wrote {RESULTS / 'latest.json'}")
            if failed or os.environ.get("BENCH_KEEP_LOGS"):
                keep = RESULTS / "logs"
                keep.mkdir(exist_ok=True)
                for path in workdir.glob("*.log"):
                    shutil.copy(path, keep / path.name)
                log(f"relay and worker logs are in {keep}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
