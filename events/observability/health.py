"""`/health/`: is every part of the bus up?

Checks (django-health-check runs them concurrently, each within its timeout):
- `database`: `SELECT 1` (django-health-check's own check);
- `broker`: an AMQP connection to RabbitMQ opens;
- `relay`: the oldest committed, unpublished event is younger than
  `EVENTS_HEALTH_MAX_RELAY_LAG_SECONDS` (a stopped relay, or one that cannot keep up, fails it);
- `deadLetters`: how many are open, per service; a warning, not a failure (the system runs on);
- `consumers`: every service in `EVENTS_HEALTH_SERVICES` has a consumer on `<service>.events`,
  asked over AMQP with a passive `queue.declare` (its consumer count), so the management
  plugin is not needed. A stopped worker is named.

The answer is JSON (`{"status": "ok" | "unavailable", "failing": [...], "checks": {...}}`), 200
when all pass, 503 naming the failing checks otherwise; a browser asking for HTML gets the
library's status page with the same status code.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.http import JsonResponse
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.exceptions import ServiceUnavailable, ServiceWarning
from health_check.views import HealthCheckView, MediaType


def _timeout() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.EVENTS_HEALTH_TIMEOUT_SECONDS)


class _Detailed:
    name: ClassVar[str] = ""

    def details(self) -> dict[str, Any]:
        return dict(getattr(self, "found", {}) or {})


def _closing_connections(run: Any) -> Any:
    """Checks run in worker threads: close the thread's database connection after each."""

    def wrapped(self: Any) -> None:
        from django.db import connections

        try:
            run(self)
        finally:
            connections.close_all()

    return wrapped


@dataclasses.dataclass
class DatabaseCheck(_Detailed, Database):
    name: ClassVar[str] = "database"


@dataclasses.dataclass
class BrokerCheck(_Detailed, HealthCheck):
    name: ClassVar[str] = "broker"
    timeout: datetime.timedelta = dataclasses.field(default_factory=_timeout, repr=False)

    def run(self) -> None:
        from kombu import Connection

        try:
            with Connection(settings.CELERY_BROKER_URL, connect_timeout=self.timeout.total_seconds()) as connection:
                connection.connect()
        except Exception as exc:
            raise ServiceUnavailable(f"RabbitMQ unreachable: {type(exc).__name__}: {exc}") from exc


@dataclasses.dataclass
class RelayLagCheck(_Detailed, HealthCheck):
    name: ClassVar[str] = "relay"

    @_closing_connections
    def run(self) -> None:
        from django.db.models import Count, Min

        from events.models import StoredEvent

        waiting = StoredEvent.objects.filter(published_at__isnull=True, rejected_reason="")
        found = waiting.aggregate(oldest=Min("timestamp"), count=Count("position"))
        lag = (datetime.datetime.now(datetime.UTC) - found["oldest"]).total_seconds() if found["oldest"] else 0.0
        self.found = {"lagSeconds": round(max(lag, 0.0), 3), "unpublished": found["count"]}
        limit = settings.EVENTS_HEALTH_MAX_RELAY_LAG_SECONDS
        if lag > limit:
            raise ServiceUnavailable(
                f"relay lag {lag:.0f}s over {limit:g}s: {found['count']} events wait to be published "
                "(is `manage.py relay` running?)"
            )


@dataclasses.dataclass
class DeadLettersCheck(_Detailed, HealthCheck):
    name: ClassVar[str] = "deadLetters"

    @_closing_connections
    def run(self) -> None:
        from django.db.models import Count

        from events.models import DeadLetter

        rows = DeadLetter.objects.filter(status=DeadLetter.Status.OPEN).values_list("service").annotate(n=Count("id"))
        by_service = dict(rows.order_by("service"))
        self.found = {"open": sum(by_service.values()), "byService": by_service}
        if by_service:
            listed = ", ".join(f"{service} {n}" for service, n in by_service.items())
            raise ServiceWarning(f"{sum(by_service.values())} open dead letters: {listed}")


@dataclasses.dataclass
class ConsumersCheck(_Detailed, HealthCheck):
    name: ClassVar[str] = "consumers"
    timeout: datetime.timedelta = dataclasses.field(default_factory=_timeout, repr=False)

    def run(self) -> None:
        from kombu import Connection

        from events import topology

        counts: dict[str, int | None] = {}
        try:
            with Connection(settings.CELERY_BROKER_URL, connect_timeout=self.timeout.total_seconds()) as connection:
                connection.connect()
                for service in settings.EVENTS_HEALTH_SERVICES:
                    channel = connection.channel()
                    try:
                        _, _, consumers = channel.queue_declare(queue=topology.event_queue_name(service), passive=True)
                        counts[service] = consumers
                    except connection.channel_errors:
                        counts[service] = None  # no such queue: its worker never started
                    finally:
                        try:
                            channel.close()
                        except Exception:
                            pass
        except Exception as exc:
            raise ServiceUnavailable(f"cannot ask RabbitMQ for consumers: {type(exc).__name__}: {exc}") from exc
        self.found = {"services": counts}
        missing = [service for service, n in counts.items() if not n]
        if missing:
            raise ServiceUnavailable(
                "no consumer on " + ", ".join(f"{s}.events" for s in missing) + ": start the worker of " + ", ".join(missing)
            )


def _state(result: Any) -> dict[str, Any]:
    error = result.error
    entry: dict[str, Any] = {"ok": error is None or isinstance(error, ServiceWarning)}
    if isinstance(error, ServiceWarning):
        entry["warning"] = error.message
    elif error is not None:
        entry["error"] = error.message
    entry.update(result.check.details())
    entry["seconds"] = round(result.time_taken, 3)
    return entry


def _wants_html(request: Any) -> bool:
    """A browser's first choice is HTML; curl, probes and scripts get JSON."""
    if request.GET.get("format"):
        return request.GET["format"] == "html"
    try:
        first = next(iter(MediaType.parse_header(request.headers.get("accept") or "application/json")), None)
    except ValueError:
        return False
    return first is not None and first.mime_type in ("text/html", "application/xhtml+xml")


class HealthView(HealthCheckView):
    checks = (DatabaseCheck, BrokerCheck, RelayLagCheck, DeadLettersCheck, ConsumersCheck)

    async def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        import asyncio

        with self.get_executor() as executor:
            self.results = await asyncio.gather(*(check.get_result(executor) for check in self.get_checks()))
        failing = [r.check.name for r in self.results if r.error is not None and not isinstance(r.error, ServiceWarning)]
        status = 503 if failing else 200
        if _wants_html(request):
            return self.render_to_response(self.get_context_data(**kwargs), status=status)
        body = {
            "status": "unavailable" if failing else "ok",
            "failing": failing,
            "checks": {r.check.name: _state(r) for r in self.results},
        }
        return JsonResponse(body, status=status)
