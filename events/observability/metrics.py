"""Prometheus metrics of the bus.

Counters and the handler latency histogram are incremented where things happen, in whichever
process that is: the relay counts what it published, a worker's consumer step what it consumed,
its handler tasks what they handled, failed and dead-lettered. Gauges that describe the system
rather than one process (relay lag, events waiting, dead letters open) are read from the database
when `/metrics` is scraped, so the web process's `/metrics` is useful on its own.

Several processes: with `PROMETHEUS_MULTIPROC_DIR` set (to an empty directory shared by every
process of the host, wiped at start; `make run` does both) prometheus-client keeps each
process's values in files there and `/metrics` adds them up, so one scrape covers the relay and
every worker, prefork children included. Without it each process counts in its own memory and
`/metrics` shows the web process's counters plus the database gauges.

Guarantee: recording never raises into the bus.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

PUBLISHED = Counter("events_published", "Events the relay published, broker-confirmed", ["event_type", "topic"])
CONSUMED = Counter(
    "events_consumed", "Events a service's consumer step read and queued for its handlers", ["event_type", "service"]
)
HANDLED = Counter("events_handled", "Events a handler handled (committed)", ["event_type", "service", "handler"])
FAILED = Counter("events_failed", "Failed handler attempts", ["event_type", "service", "handler"])
DEAD_LETTERED = Counter("events_dead_lettered", "Dead letters stored", ["event_type", "service", "stage"])
HANDLER_SECONDS = Histogram(
    "events_handler_duration_seconds",
    "Time a handler ran on one event, successful or not",
    ["service", "handler"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Positions the relay has sent and not yet seen confirmed, with their (event type, topic).
_in_flight: dict[int, tuple[str, str]] = {}


def relay_sent(outgoing: Iterable[Any]) -> None:
    try:
        for message in outgoing:
            topic, _, event_type = message.routing_key.partition(".")
            _in_flight[message.position] = (event_type, topic)
    except Exception:
        logger.debug("metrics: relay_sent failed", exc_info=True)


def relay_confirmed(positions: Iterable[int]) -> None:
    try:
        counts: dict[tuple[str, str], int] = {}
        for position in positions:
            labels = _in_flight.pop(position, None)
            if labels is not None:
                counts[labels] = counts.get(labels, 0) + 1
        for labels, count in counts.items():
            PUBLISHED.labels(*labels).inc(count)
        if len(_in_flight) > 100_000:  # nacked and set-aside rows are sent again under the same position
            _in_flight.clear()
    except Exception:
        logger.debug("metrics: relay_confirmed failed", exc_info=True)


def consumed(service: str, event_type: str) -> None:
    try:
        CONSUMED.labels(event_type, service).inc()
    except Exception:
        logger.debug("metrics: consumed failed", exc_info=True)


def handler_ran(service: str, handler: str, event_type: str, seconds: float, ok: bool) -> None:
    try:
        HANDLER_SECONDS.labels(service, handler).observe(seconds)
        (HANDLED if ok else FAILED).labels(event_type, service, handler).inc()
    except Exception:
        logger.debug("metrics: handler_ran failed", exc_info=True)


def dead_lettered(service: str, event_type: str, stage: str) -> None:
    try:
        DEAD_LETTERED.labels(event_type or "?", service, stage).inc()
    except Exception:
        logger.debug("metrics: dead_lettered failed", exc_info=True)


class DatabaseCollector:
    """Gauges read from the database at scrape time."""

    def collect(self) -> Iterator[Metric]:
        from django.db.models import Count, Min

        from events.models import DeadLetter, StoredEvent

        waiting = StoredEvent.objects.filter(published_at__isnull=True, rejected_reason="")
        oldest = waiting.aggregate(oldest=Min("timestamp"), count=Count("position"))
        lag = max(0.0, (datetime.now(UTC) - oldest["oldest"]).total_seconds()) if oldest["oldest"] else 0.0
        yield GaugeMetricFamily("events_relay_lag_seconds", "Age of the oldest committed event not yet published", value=lag)
        yield GaugeMetricFamily("events_unpublished", "Committed events not yet published", value=oldest["count"])
        open_letters = GaugeMetricFamily("events_dead_letters_open", "Open dead letters", labels=["service"])
        rows = DeadLetter.objects.filter(status=DeadLetter.Status.OPEN).values("service").annotate(n=Count("id"))
        for row in rows.order_by("service"):
            open_letters.add_metric([row["service"]], row["n"])
        yield open_letters


class _ThisProcess:
    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition(multiprocess_dir: str = "") -> bytes:
    """The text exposition `/metrics` serves: every process's counters (see the docstring) and the database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def view(request: Any) -> Any:
    from django.conf import settings
    from django.http import HttpResponse

    return HttpResponse(exposition(settings.PROMETHEUS_MULTIPROC_DIR), content_type=CONTENT_TYPE_LATEST)
