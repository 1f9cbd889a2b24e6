"""Place orders both ways, healthy and with a service down, and print the two checkouts side by side.

Starts what it needs itself: the API on a local port (in this process), the relay, and one worker
each for orders (with shipping and notifications), payments and inventory, so that it can stop one.
Run it with the project's other processes stopped (or on a database and vhost of its own), since
workers already consuming the same queues would take part.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application
from django.db import close_old_connections

from accounts.services import user_register
from inventory.models import Stock
from orders.models import OrderSummary, Product

ROOT = Path(settings.BASE_DIR)
BODY = {"items": [{"productId": "DEMO-1", "quantity": 1}], "shippingAddress": {"city": "Hyderabad", "pincode": "500001"}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Run:
    style: str
    scenario: str
    placed: int = 0
    failed: int = 0
    answers: list[float] = field(default_factory=list)
    completions: list[float] = field(default_factory=list)
    saw: str = ""


def percentile(values: list[float], share: float) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    value = ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


class Command(BaseCommand):
    help = "Place orders event-driven and request-driven, healthy and with a service down; print a side-by-side table."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--orders", type=int, default=20, help="orders per scenario")
        parser.add_argument("--outage", type=float, default=3.0, help="seconds a stopped worker stays stopped")

    def handle(self, *args: Any, **options: Any) -> None:
        self.count, self.outage = options["orders"], options["outage"]
        self.setup_data()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        server = ThreadedWSGIServer(("127.0.0.1", port), QuietHandler)
        server.set_app(get_internal_wsgi_application())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        wake = f"127.0.0.1:{free_port()}"
        changed = ("PAYMENTS_BASE_URL", "NOTIFICATIONS_BASE_URL", "ORDERS_BASE_URL", "EVENTS_RELAY_WAKE_ADDRESS")
        saved = {name: getattr(settings, name) for name in changed}
        settings.PAYMENTS_BASE_URL = settings.NOTIFICATIONS_BASE_URL = settings.ORDERS_BASE_URL = self.url
        settings.EVENTS_RELAY_WAKE_ADDRESS = wake
        self.env = {**os.environ, "ORDERS_BASE_URL": self.url, "EVENTS_RELAY_WAKE_ADDRESS": wake}
        self.logs = Path(tempfile.mkdtemp(prefix="demo-checkout-"))
        self.stdout.write(f"API at {self.url}; relay and worker logs in {self.logs}")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.client = self.customer_client()
        try:
            self.start("relay", [sys.executable, "manage.py", "relay"])
            for service in ("orders,shipping,notifications", "payments", "inventory"):
                self.start_worker(service)
            runs = [
                self.event_driven("all services up"),
                self.request_driven("all services up"),
                self.event_driven("payments down", stop="payments"),
                self.request_driven("payments down", payments_down=True),
                self.event_driven("inventory stopped", stop="inventory"),
                self.request_driven("inventory stopped", stop="inventory"),
            ]
        finally:
            for proc in self.procs.values():
                proc.terminate()
            for proc in self.procs.values():
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            server.shutdown()
            self.client.close()
            for name, value in saved.items():
                setattr(settings, name, value)
        self.stdout.write(self.table(runs))

    # --- set-up

    def setup_data(self) -> None:
        Product.objects.update_or_create(
            sku="DEMO-1", defaults={"name": "Demo widget", "price": Decimal("9.99"), "currency": "EUR"}
        )
        Stock.objects.update_or_create(sku="DEMO-1", defaults={"available": 1_000_000})
        User = get_user_model()
        if not User.objects.filter(username="demo-customer").exists():
            user_register(username="demo-customer", email="demo-customer@example.com")
        from payments.models import ProviderSettings

        ProviderSettings.objects.update_or_create(pk=1, defaults={"failure_rate": 0.0, "latency_ms": 20, "down": False})

    def start(self, name: str, args: list[str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def start_worker(self, queues: str) -> None:
        name = queues.split(",")[0]
        self.start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "project",
                "worker",
                "-Q",
                queues,
                "-c",
                "1",
                "-n",
                f"demo-{name}@%h",
                "-l",
                "INFO",
            ],
        )
        log = self.logs / f"{name}.log"
        start = log.stat().st_size
        self.wait(lambda: " ready." in log.read_text(errors="replace")[start:], 60)

    def stop_worker(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.terminate()
        proc.wait(30)

    @staticmethod
    def wait(predicate: Callable[[], Any], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    # --- the two styles

    def customer_client(self) -> httpx.Client:
        """A logged-in customer's session, as a browser has it (Basic auth would hash the password on every call)."""
        from django.middleware.csrf import _get_new_csrf_string
        from django.test import Client

        browser = Client()
        browser.force_login(get_user_model().objects.get(username="demo-customer"))
        csrf = _get_new_csrf_string()
        cookies = {
            settings.SESSION_COOKIE_NAME: browser.cookies[settings.SESSION_COOKIE_NAME].value,
            settings.CSRF_COOKIE_NAME: csrf,
        }
        return httpx.Client(base_url=self.url, cookies=cookies, headers={"X-CSRFToken": csrf}, timeout=30)

    def post(self, path: str) -> tuple[httpx.Response | None, float]:
        started = time.perf_counter()
        try:
            response = self.client.post(path, json=BODY)
        except httpx.HTTPError:
            response = None
        return response, time.perf_counter() - started

    def wait_confirmed(self, placed: dict[str, float], run: Run, timeout: float) -> None:
        pending = dict(placed)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            close_old_connections()
            done = OrderSummary.objects.filter(order_id__in=list(pending), status="confirmed").values_list("order_id", flat=True)
            now = time.perf_counter()
            for order_id in done:
                run.completions.append(now - pending.pop(order_id))
            time.sleep(0.02)
        run.failed += len(pending)

    def event_driven(self, scenario: str, stop: str | None = None) -> Run:
        self.stdout.write(f"event-driven, {scenario} …")
        run = Run("event-driven", scenario)
        if stop:
            self.stop_worker(stop)
        placed: dict[str, float] = {}
        for _ in range(self.count):
            started = time.perf_counter()
            response, took = self.post("/api/orders/")
            run.placed += 1
            run.answers.append(took)
            if response is not None and response.status_code == 201:
                placed[response.json()["orderId"]] = started
            else:
                run.failed += 1
        if stop:
            time.sleep(self.outage)  # the outage
            self.start_worker(stop if stop != "orders" else "orders,shipping,notifications")
        self.wait_confirmed(placed, run, timeout=120)
        run.saw = "201 order received at once; confirmation email once paid and reserved"
        if stop:
            run.saw += f" (after {stop} came back)"
        return run

    def request_driven(self, scenario: str, payments_down: bool = False, stop: str | None = None) -> Run:
        self.stdout.write(f"request-driven, {scenario} …")
        run = Run("request-driven", scenario)
        if stop:
            self.stop_worker(stop)
        if payments_down:
            settings.PAYMENTS_BASE_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        details: set[str] = set()
        try:
            for _ in range(self.count):
                response, took = self.post("/api/checkout/sync")
                run.placed += 1
                run.answers.append(took)
                if response is not None and response.status_code == 201 and response.json()["notified"]:
                    run.completions.append(took)  # paid and told, in the answer
                else:
                    run.failed += 1
                    details.add(f"{response.status_code} {response.json()['detail']}" if response is not None else "no answer")
        finally:
            settings.PAYMENTS_BASE_URL = self.url
        if stop:
            time.sleep(self.outage)
            self.start_worker(stop)
        run.saw = "; ".join(sorted(details)) if details else "201 paid and order received, in the answer"
        return run

    @staticmethod
    def table(runs: list[Run]) -> str:
        header = (
            "| style | scenario | orders placed | completed | failed | answer p50 | answer p99 "
            "| complete p50 | complete p99 | what the customer saw |"
        )
        lines = [header, "|" + "---|" * 10]
        for run in runs:
            lines.append(
                f"| {run.style} | {run.scenario} | {run.placed} | {len(run.completions)} | {run.failed} "
                f"| {percentile(run.answers, 0.5)} | {percentile(run.answers, 0.99)} "
                f"| {percentile(run.completions, 0.5)} | {percentile(run.completions, 0.99)} | {run.saw} |"
            )
        return "\n".join(lines) + "\n"
