"""Benchmark figures of the commerce services (called by bench/run.py, phases e and f).

(e) saga: orders placed -> confirmed per second through the whole checkout saga (OrderPlaced ->
    payments and inventory, the latter calling the orders API back -> the saga confirms), with
    the latency from placing to confirmed (p50/p99), under that load and at light load
(f) projection rebuild: `rebuild_projections` over the log, in events/s, against a raw read of
    the same rows; target >= 0.5 x the raw rate
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

SAGA_EVENTS = ("OrderPlaced", "OrderConfirmed")


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def serve_api() -> tuple[str, Any]:
    """The project's API on a free local port, in this process: inventory calls the orders API back."""
    import socket

    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedWSGIServer(("127.0.0.1", port), Quiet)
    server.set_app(get_internal_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", server


def _setup() -> Any:
    from accounts.services import user_register
    from inventory.models import Stock
    from orders.models import Product
    from payments.models import ProviderSettings

    Product.objects.update_or_create(sku="BENCH-1", defaults={"name": "bench", "price": Decimal("1.00"), "currency": "EUR"})
    Stock.objects.update_or_create(sku="BENCH-1", defaults={"available": 10_000_000})
    # The provider answers at once: the figure is the saga's, not a simulated latency.
    ProviderSettings.objects.update_or_create(pk=1, defaults={"failure_rate": 0.0, "latency_ms": 0, "down": False})
    return user_register(username=f"bench-{uuid.uuid4().hex[:8]}", email="bench@example.com")


def _place(customer: Any, count: int, interval: float = 0.0) -> list[str]:
    from orders.services import order_place

    ids = []
    for _ in range(count):
        started = time.monotonic()
        ids.append(order_place(customer=customer, items=[("BENCH-1", 1)], shipping_address={"city": "X", "pincode": "1"}).id)
        if interval:
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return ids


def _confirmed(ids: list[str]) -> int:
    from orders.models import OrderSummary

    return OrderSummary.objects.filter(order_id__in=ids, status="confirmed").count()


def _latencies(ids: list[str]) -> dict[str, Any]:
    """Placing -> confirmed: the OrderConfirmed event's timestamp minus the OrderPlaced one's."""
    from events.models import StoredEvent

    times: dict[str, dict[str, datetime]] = {}
    rows = StoredEvent.objects.filter(subject__in=ids, event_type__in=SAGA_EVENTS).values_list(
        "subject", "event_type", "timestamp"
    )
    for subject, event_type, timestamp in rows:
        times.setdefault(subject, {})[event_type] = timestamp
    values = [(t["OrderConfirmed"] - t["OrderPlaced"]).total_seconds() * 1000 for t in times.values() if len(t) == 2]
    return {
        "n": len(values),
        "p50_ms": _percentile(values, 50),
        "p99_ms": _percentile(values, 99),
        "max_ms": max(values),
        "last_confirmed": max(t["OrderConfirmed"] for t in times.values()),
    }


def measure_saga(
    processes: Any,
    start_worker: Callable[[dict[str, str]], None],
    wait_for: Callable[..., Any],
    n: int,
    light: int,
    light_interval: float = 0.25,
) -> tuple[dict[str, Any], dict[str, Any]]:
    url, server = serve_api()
    try:
        start_worker({"ORDERS_BASE_URL": url, "PAYMENTS_PROVIDER_LATENCY_MS": "0"})
        customer = _setup()
        warmup = _place(customer, 3)
        wait_for(lambda: _confirmed(warmup) == 3, 120, "the saga to warm up", processes)

        start = datetime.now(UTC)
        ids = _place(customer, n)
        placed_s = (datetime.now(UTC) - start).total_seconds()
        wait_for(lambda: _confirmed(ids) == n, max(120.0, n / 5), f"{n} orders to be confirmed", processes, interval=0.1)
        loaded = _latencies(ids)
        elapsed = (loaded.pop("last_confirmed") - start).total_seconds()
        throughput = {
            "n": n,
            "elapsed_s": elapsed,
            "rate": n / elapsed,
            "unit": "orders/s",
            "place_rate": n / placed_s,
            "latency_under_load": loaded,
            "how": "order_place() from this process, one transaction each -> relay -> payments (2.2), inventory (1.0, "
            "calling the orders API back over HTTP), shipping (2.1) -> PaymentCaptured / StockReserved -> the saga's "
            "OrderConfirmed; one worker -Q orders,payments,inventory,shipping,notifications -c 2; from the first "
            "placing to the last OrderConfirmed",
        }

        time.sleep(1.0)
        light_ids = _place(customer, light, interval=light_interval)
        wait_for(lambda: _confirmed(light_ids) == light, 120, "the light-load orders", processes)
        latency = _latencies(light_ids)
        latency.pop("last_confirmed")
        latency["how"] = (
            f"{light} orders, one every {light_interval * 1000:.0f} ms; OrderConfirmed.timestamp - OrderPlaced.timestamp"
        )
        return throughput, latency
    finally:
        server.shutdown()


def measure_rebuild(orders: int) -> dict[str, Any]:
    """(f) rebuild_projections against a raw read of the same rows, over `orders` extra synthetic orders."""
    from django.db import connection

    from events.models import StoredEvent
    from orders import projections
    from orders.models import OrderSummary

    base = datetime.now(UTC) - timedelta(days=1)
    kinds = [
        (
            "OrderPlaced",
            "2.2",
            lambda o: {
                "orderId": o,
                "status": "Placed",
                "items": [{"productId": "BENCH-1", "quantity": 1}],
                "shippingAddress": {"city": "X", "pincode": "1"},
                "userId": "1",
                "total": "1.00",
                "currency": "EUR",
            },
        ),
        ("PaymentCaptured", "1.0", lambda o: {"orderId": o, "paymentId": "1", "amount": "1.00", "currency": "EUR"}),
        ("StockReserved", "1.0", lambda o: {"orderId": o, "items": [{"productId": "BENCH-1", "quantity": 1}]}),
        ("OrderConfirmed", "1.0", lambda o: {"orderId": o, "userId": "1", "total": "1.00", "currency": "EUR"}),
        ("ShipmentCreated", "1.0", lambda o: {"orderId": o, "shipmentId": "s", "city": "X", "pincode": "1"}),
    ]
    batch: list[StoredEvent] = []
    for n in range(orders):
        order_id = f"ORD-BENCH{n:09d}"
        for seq, (kind, version, data) in enumerate(kinds, start=1):
            batch.append(
                StoredEvent(
                    topic="bench",
                    event_type=kind,
                    event_version=version,
                    source="bench",
                    subject=order_id,
                    sequence=seq,
                    timestamp=base + timedelta(milliseconds=n * 10 + seq),
                    data=data(order_id),
                    published_at=base,
                )
            )
        if len(batch) >= 5000:
            StoredEvent.objects.bulk_create(batch)
            batch = []
    StoredEvent.objects.bulk_create(batch)
    rows = StoredEvent.objects.filter(subject__startswith="ORD-", sequence__isnull=False).count()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE events_storedevent")

    # Warm the cache the same way for both, then time each.
    sum(1 for _ in projections.folded_orders())
    started = time.perf_counter()
    read = 0
    for _ in (
        StoredEvent.objects.filter(subject__startswith="ORD-", sequence__isnull=False)
        .order_by("subject", "sequence")
        .values_list("subject", "event_type", "data", "sequence", "timestamp")
        .iterator(chunk_size=2000)
    ):
        read += 1
    raw_s = time.perf_counter() - started

    started = time.perf_counter()
    projected = projections.rebuild()
    rebuild_s = time.perf_counter() - started
    assert OrderSummary.objects.count() == projected
    return {
        "events": rows,
        "orders": projected,
        "raw_read_s": raw_s,
        "raw_rate": read / raw_s,
        "rebuild_s": rebuild_s,
        "rate": rows / rebuild_s,
        "unit": "events/s",
        "ratio": (rows / rebuild_s) / (read / raw_s),
        "how": "raw: the log rows of every order, as rebuild reads them (values_list, subject/sequence order, chunks of "
        "2000); rebuild: projections.rebuild() (delete the read model, fold each order, bulk_create in batches of "
        f"1000) in one transaction; {orders} synthetic orders of 5 events plus those of (e)",
    }
