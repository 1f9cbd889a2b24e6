"""Real processes for a chaos test, the ledger that judges what they did, and the report table.

A `Stack` starts `manage.py relay`, `celery worker` and `celery beat` as the `Procfile` does,
against one broker vhost and the test database, and stops them (by PID) at the end.

The ledger reads the database after the drain and counts:
- lost: a committed event × a handler of a running service subscribed to it that has neither an
  inbox row nor a dead letter with a reason;
- phantom: an inbox row or a business effect whose event was never committed (events the test
  put on the wire itself are named to the ledger as `external`);
- doubled: a business effect keyed by an event that exists more than once (a notification per
  event, kind and recipient; a SalaryCredited per employee and month; a payment per order);
- disordered: for a handler declared `ordered`, a subject whose events it handled out of
  sequence order.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.models import Count

ROOT = Path(__file__).resolve().parents[2]
WORKER = ["-m", "celery", "-A", "project", "worker", "-l", "INFO", "--without-gossip", "--without-mingle"]
BEAT = ["-m", "celery", "-A", "project", "beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler", "-l", "INFO"]
# What handler tasks and ordered lanes report once they have committed: {'handled': n, 'duplicates': m, ...}
TASK_DONE = re.compile(r"(?:Task events\.handle\[[^\]]+\] succeeded in [\d.e-]+s|ordered events committed): (\{[^\n]*\})")


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Proc:
    """One process of the stack, its output in a log file; signalled and stopped by its PID only."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log = logs / f"{name}.log"
        self.handle = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.handle.pid

    def alive(self) -> bool:
        return self.handle.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def send(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def children(self) -> list[int]:
        """PIDs of this process's children (a prefork worker's pool processes)."""
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a power cut would: nothing is cleaned up."""
        self.send(signal.SIGKILL)
        self.handle.wait(timeout=30)

    def stop(self) -> None:
        if not self.alive():
            return
        self.send(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        self.handle.terminate()
        try:
            self.handle.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.handle.kill()
            self.handle.wait()


@dataclass
class Stack:
    """Relay, workers and beat of one chaos test; `services` are the ones its workers consume."""

    logs: Path
    broker_url: str
    env_extra: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    services: set[str] = field(default_factory=set)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.chaos.settings",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": self.broker_url,
            "CHAOS_STATE_DIR": str(self.logs),
            "EVENTS_RELAY_WAKE_ADDRESS": "",
            "EVENTS_RELAY_POLL_SECONDS": "0.05",
            "EVENTS_RETRY_BACKOFF_SECONDS": "0.2",
            "EVENTS_RETRY_BACKOFF_MAX_SECONDS": "1",
            "PAYMENTS_PROVIDER_LATENCY_MS": "0",
            "SIMULATION_ENABLED": "False",
            "CONN_MAX_AGE": "60",
            **self.env_extra,
        }

    def _start(self, name: str, args: list[str]) -> Proc:
        taken = sum(1 for p in self.procs if p.name == name or p.name.startswith(f"{name}#"))
        proc = Proc(f"{name}#{taken}" if taken else name, args, self.env(), self.logs)
        self.procs.append(proc)
        return proc

    def relay(self, name: str = "relay", wait: bool = True) -> Proc:
        proc = self._start(name, ["manage.py", "relay"])
        if wait:
            self.wait_for_log(proc, "relay connected", timeout=60)
        return proc

    def worker(self, name: str, queues: Iterable[str], concurrency: int = 2, pool: str = "prefork", wait: bool = True) -> Proc:
        queues = list(queues)
        self.services.update(queues)
        args = [*WORKER, "-Q", ",".join(queues), "-n", f"{name}@chaos", "-P", pool]
        if pool == "prefork":
            args += ["-c", str(concurrency)]
        proc = self._start(name, args)
        if wait:
            self.wait_for_log(proc, " ready.", timeout=90)
        return proc

    def beat(self, name: str = "beat") -> Proc:
        return self._start(name, [*BEAT, "--max-interval", "1"])

    @staticmethod
    def wait_for_log(proc: Proc, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in proc.output():
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited ({proc.handle.returncode}):\n{proc.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{proc.name} did not log {text!r} within {timeout}s:\n{proc.output()[-3000:]}")
            time.sleep(0.1)

    def outcomes(self) -> Counter[str]:
        """What handler tasks and ordered lanes reported, summed over every worker that ran (handled, duplicates...)."""
        total: Counter[str] = Counter()
        for proc in self.procs:
            for match in TASK_DONE.finditer(proc.output()):
                try:
                    total.update(ast.literal_eval(match.group(1)))
                except (ValueError, SyntaxError):
                    continue
        return total

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def tails(self, chars: int = 2500) -> str:
        return "".join(f"\n----- {p.name} (pid {p.pid}) -----\n{p.output()[-chars:]}" for p in self.procs)


# --- the ledger


@dataclass
class Figures:
    fault: str
    events: int = 0
    expected: int = 0
    redeliveries: int = 0
    lost: int = 0
    phantom: int = 0
    doubled: int = 0
    dead_letters: int = 0
    disordered: int = 0
    refused: int = 0
    recover_seconds: float | None = None
    details: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.phantom or self.doubled or self.disordered)

    def row(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "events": self.events,
            "handler_deliveries_expected": self.expected,
            "redeliveries": self.redeliveries,
            "lost": self.lost,
            "phantom": self.phantom,
            "doubled": self.doubled,
            "dead_letters": self.dead_letters,
            "disordered": self.disordered,
            "refused_by_relay": self.refused,
            "recover_seconds": None if self.recover_seconds is None else round(self.recover_seconds, 1),
        }

    def explain(self) -> str:
        shown = {k: v[:5] for k, v in self.details.items() if v}
        return f"{self.row()} {shown}"


def _subscriptions_by_type(services: set[str]) -> dict[str, list[Any]]:
    from events import subscriptions

    by_type: dict[str, list[Any]] = defaultdict(list)
    for service in services:
        for subscription in subscriptions.for_service(service):
            for name in (subscription.event_type.name, *subscription.event_type.aliases):
                by_type[name].append(subscription)
    return by_type


def take_ledger(fault: str, services: set[str], external: Iterable[str] = ()) -> Figures:
    """Judge the database as it is now (see the module docstring)."""
    from events.models import DeadLetter, InboxEntry, StoredEvent
    from notifications.models import Notification
    from payments.models import Payment
    from payroll.models import Payslip

    external_ids = set(external)
    figures = Figures(fault)
    rows = list(StoredEvent.objects.values_list("event_id", "source", "event_type", "subject", "sequence", "rejected_reason"))
    figures.events = len(rows)
    figures.refused = sum(1 for row in rows if row[5])
    committed = {str(row[0]) for row in rows}
    where = {str(row[0]): (row[3], row[4]) for row in rows}
    by_type = _subscriptions_by_type(services)

    inbox = set(InboxEntry.objects.values_list("source", "event_id", "handler"))
    inbox_order = list(InboxEntry.objects.order_by("pk").values_list("event_id", "handler"))
    letters = list(DeadLetter.objects.values_list("event_id", "handler", "service", "reason"))
    figures.dead_letters = len(letters)
    handler_letters = {(eid, handler) for eid, handler, _, reason in letters if handler and reason}
    service_letters = {(eid, service) for eid, handler, service, reason in letters if not handler and reason}

    lost: list[str] = []
    for event_id, source, event_type, _, _, rejected in rows:
        if rejected:
            continue  # kept in the log with its reason, visible in the admin: not published by design
        event_id = str(event_id)
        for subscription in by_type.get(event_type, ()):
            figures.expected += 1
            if (source, event_id, subscription.name) in inbox:
                continue
            if (event_id, subscription.name) in handler_letters or (event_id, subscription.service) in service_letters:
                continue
            if subscription.max_age is not None:
                continue  # may have been skipped as too old, by design
            lost.append(f"{event_type} {event_id} -> {subscription.name}")
    figures.lost = len(lost)

    known = committed | external_ids
    phantom = [f"inbox {eid} {handler}" for _, eid, handler in inbox if eid not in known]
    phantom += [f"notification {eid}" for eid in Notification.objects.values_list("event_id", flat=True) if eid not in known]
    credited = Counter()
    credited_payslips: set[str] = set()
    for data in StoredEvent.objects.filter(event_type="SalaryCredited").values_list("data", flat=True):
        credited[(data["employeeId"], data["period"])] += 1
        credited_payslips.add(str(data["payslipId"]))
    phantom += [f"payslip {pk}" for pk in Payslip.objects.values_list("pk", flat=True) if str(pk) not in credited_payslips]
    placed = set(StoredEvent.objects.filter(event_type="OrderPlaced").values_list("subject", flat=True))
    phantom += [f"payment for {order}" for order in Payment.objects.values_list("order_id", flat=True) if order not in placed]
    figures.phantom = len(phantom)

    doubled = [
        f"{row['kind']} {row['event_id']} to {row['recipient']!r} x{row['n']}"
        for row in Notification.objects.values("event_id", "kind", "recipient").annotate(n=Count("pk")).filter(n__gt=1)
    ]
    doubled += [f"SalaryCredited {key} x{n}" for key, n in credited.items() if n > 1]
    doubled += [
        f"payment {row['order_id']} x{row['n']}"
        for row in Payment.objects.values("order_id").annotate(n=Count("pk")).filter(n__gt=1)
    ]
    figures.doubled = len(doubled)

    ordered = {s.name for subs in by_type.values() for s in subs if getattr(s, "ordered", False)}
    disordered: list[str] = []
    if ordered:
        last: dict[tuple[str, str], int] = {}
        for event_id, handler in inbox_order:
            if handler not in ordered or event_id not in where:
                continue
            subject, sequence = where[event_id]
            if not subject or sequence is None:
                continue
            previous = last.get((handler, subject))
            if previous is not None and sequence < previous:
                disordered.append(f"{handler} {subject}: {sequence} after {previous}")
            last[(handler, subject)] = max(sequence, previous or sequence)
    figures.disordered = len(disordered)
    figures.details = {"lost": lost, "phantom": phantom, "doubled": doubled, "disordered": disordered}
    return figures


def unpublished() -> int:
    from events.models import StoredEvent

    return StoredEvent.objects.filter(published_at__isnull=True, rejected_reason="").count()


def drain(
    stack: Stack,
    fault: str,
    *,
    since: float,
    timeout: float = 180,
    external: Iterable[str] = (),
    settle: float = 2.0,
    also: Callable[[], bool] | None = None,
) -> Figures:
    """Wait until every committed event is published and accounted for (inbox or dead letter), then take the ledger.

    `since` is the monotonic time of the fault: the figures' time to recover counts from it. A
    ledger that never balances fails the test with what is missing and the processes' logs.
    """
    deadline = time.monotonic() + timeout
    external = list(external)
    while True:
        figures = take_ledger(fault, stack.services, external) if unpublished() == 0 else None
        if figures is not None and figures.lost == 0 and (also is None or also()):
            recovered = time.monotonic() - since
            break
        if time.monotonic() > deadline:
            figures = figures or take_ledger(fault, stack.services, external)
            raise AssertionError(
                f"{fault}: not drained after {timeout}s ({unpublished()} unpublished): {figures.explain()}{stack.tails()}"
            )
        time.sleep(0.5 if figures is None or figures.expected < 20_000 else 2.0)
    time.sleep(settle)  # late duplicates, if any, show now
    figures = take_ledger(fault, stack.services, external)
    figures.recover_seconds = recovered
    outcomes = stack.outcomes()
    figures.redeliveries = outcomes["duplicates"] + outcomes["redelivered"] + outcomes["split"]
    REPORT.append(figures)
    return figures


def assert_clean(figures: Figures) -> None:
    assert figures.clean, f"ledger not clean: {figures.explain()}"


# Rows of this run, printed as a table and written as JSON at the end (tests/chaos/conftest.py).
REPORT: list[Figures] = []

COLUMNS = (
    ("fault", "fault", 44),
    ("events", "events", 7),
    ("redeliveries", "redeliv.", 8),
    ("lost", "lost", 4),
    ("phantom", "phantom", 7),
    ("doubled", "doubled", 7),
    ("dead_letters", "dead l.", 7),
    ("recover_seconds", "recover s", 9),
)


def table(rows: list[dict[str, Any]]) -> str:
    head = " | ".join(title.ljust(width) for _, title, width in COLUMNS)
    lines = [f"| {head} |", "|" + "|".join("-" * (width + 2) for _, _, width in COLUMNS) + "|"]
    for row in rows:
        cells = " | ".join(str("" if row[key] is None else row[key]).ljust(width) for key, _, width in COLUMNS)
        lines.append(f"| {cells} |")
    return "\n".join(lines)
