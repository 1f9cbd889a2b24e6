from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections
from kombu import Connection, Producer

from events import topology
from events.relay import ConfirmingPublisher, Relay
from tests import support  # noqa: F401 - registers the test event types and handlers

ROOT = Path(__file__).resolve().parent.parent
# pytest-django's live server listens on 127.0.0.1 (its default, "localhost", may resolve to ::1 first).
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fault-injection suite (tests/chaos) is collected only by `make chaos`, which runs it with its own settings."""
    if collection_path == ROOT / "tests" / "chaos" and config.getoption("ds") != "tests.chaos.settings":
        return True
    return None


@pytest.fixture
def broker_url(settings: Any) -> str:
    return settings.CELERY_BROKER_URL


@pytest.fixture
def amqp(broker_url: str) -> Iterator[Connection]:
    with Connection(broker_url) as conn:
        conn.ensure_connection(max_retries=3)
        topology.declare(conn)
        yield conn


@pytest.fixture
def purge(amqp: Connection) -> Iterator[None]:
    """Start and end with empty queues, so tests don't see each other's messages."""

    def _purge() -> None:
        channel = amqp.default_channel
        for queue in topology.all_queues(topology.settings.SERVICES):
            channel.queue_purge(queue.name)

    _purge()
    yield
    _purge()


def raw_publish(
    conn: Connection, body: bytes, routing_key: str, *, content_type: str = "application/json", headers: dict | None = None
) -> None:
    producer = Producer(conn.default_channel)
    producer.publish(
        body,
        exchange=topology.EVENTS,
        routing_key=routing_key,
        content_type=content_type,
        content_encoding="binary",
        headers=headers or {},
        delivery_mode=2,
        serializer=None,
    )


def basic_get(conn: Connection, queue: str) -> Any:
    return conn.default_channel.basic_get(queue, no_ack=True)


def relay_all(relay: Relay | None = None, broker_url: str | None = None) -> int:
    """Publish everything unpublished in the event log; returns the number of rows claimed."""
    relay = relay or Relay(wake_address="", broker_url=broker_url)
    total = 0
    with Connection(relay.broker_url) as conn:
        publisher = ConfirmingPublisher(conn)
        while claimed := relay.relay_batch(publisher):
            total += claimed
    return total


class RelayThread:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.relay.run()
        finally:
            connections.close_all()

    def __enter__(self) -> Relay:
        self.thread.start()
        return self.relay

    def __exit__(self, *exc: object) -> None:
        self.relay.stop()
        self.thread.join(timeout=15)


@pytest.fixture
def running_relay(purge: None) -> Iterator[Relay]:
    with RelayThread(Relay(wake_address="", poll_seconds=0.05)) as relay:
        yield relay


@contextlib.contextmanager
def in_process_worker(settings: Any, queues: list[str] | None = None, batch_window_ms: float = 5) -> Iterator[Any]:
    """A real Celery worker in this process (solo pool) for the test service (or `queues`), consumer step included."""
    from celery.contrib.testing.worker import start_worker
    from celery.worker import state as worker_state

    from project.celery import app

    settings.EVENTS_RETRY_BACKOFF_SECONDS = 0.05
    settings.EVENTS_RETRY_BACKOFF_MAX_SECONDS = 0.2
    settings.EVENTS_CONSUMER_BATCH_WINDOW_MS = batch_window_ms
    support.failures_left.clear()
    support.outages_left.clear()
    support.calls.clear()
    # The solo pool acks between 2-second polls; a deeper prefetch keeps tasks flowing meanwhile.
    app.conf.worker_prefetch_multiplier = 50
    with start_worker(
        app, pool="solo", perform_ping_check=False, queues=queues or ["testsvc"], loglevel="WARNING", shutdown_timeout=20
    ) as w:
        yield w
        # Ask the worker to stop, and wake its event loop so that it notices now, not at its next timer.
        worker_state.should_terminate = 0
        app.control.ping(destination=[w.hostname], timeout=0.2)
    app.conf.worker_prefetch_multiplier = 1
    connections.close_all()


@pytest.fixture
def worker(purge: None, settings: Any) -> Iterator[Any]:
    with in_process_worker(settings) as w:
        yield w


def subprocess_env() -> dict[str, str]:
    """Environment for relay and worker processes: this test run's broker vhost and database."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EVENTS_RELAY_POLL_SECONDS": "0.05",
    }
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    return env


class Process:
    def __init__(self, name: str, args: list[str], tmp_path: Path) -> None:
        self.name = name
        self.log = tmp_path / f"{name}.log"
        self.handle = subprocess.Popen(args, cwd=ROOT, env=subprocess_env(), stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.handle.poll() is None:
            self.handle.terminate()
            try:
                self.handle.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.handle.kill()
                self.handle.wait()
        return self.handle.returncode


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Any]:
    """Start real relay / worker processes; they are stopped (and their logs shown on failure) after the test."""
    started: list[Process] = []

    def start(name: str, *args: str) -> Process:
        process = Process(name, [sys.executable, *args], tmp_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        sys.stdout.write(f"\n----- {process.name} log -----\n{process.output()[-4000:]}\n")


@pytest.fixture
def finished_tasks() -> Iterator[list[str]]:
    """Names of the tasks the in-process worker has finished, in order."""
    from celery.signals import task_postrun

    done: list[str] = []

    def record(sender: Any = None, **kwargs: Any) -> None:
        done.append(sender.name)

    task_postrun.connect(record, weak=False)
    yield done
    task_postrun.disconnect(record)
