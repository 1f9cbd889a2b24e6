"""Load through the real flows, as the web process would make it: users, payroll, orders, couriers, and marks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import transaction

from accounts.services import user_register
from delivery.services import courier_locations_record
from events import publish
from orders.services import order_place
from payroll.periods import last_ended_period
from payroll.services import payroll_run
from tests.chaos.events import Mark, Work
from tests.commerce import ADDRESS, catalogue, customer
from tests.payroll.factories import hire
from tests.streams import courier_with_delivery, route

# The services whose workers a mixed load needs, and the ones each flow touches.
USERS = ["accounts", "notifications"]
PAYROLL = ["payroll", "notifications"]
ORDERS = ["orders", "payments", "inventory", "shipping", "notifications"]
COURIERS = ["delivery", "tracking", "analytics", "restaurant"]
ALL = sorted({*USERS, *PAYROLL, *ORDERS, *COURIERS, "chaos"})


def users(count: int, prefix: str = "u") -> None:
    for i in range(count):
        with transaction.atomic():
            user_register(username=f"{prefix}{i}", email=f"{prefix}{i}@example.com")


def payroll(count: int, prefix: str = "emp") -> None:
    hire(count, prefix=prefix)
    payroll_run(period=last_ended_period(), chunk_size=max(1, count // 3))


def orders(count: int, prefix: str = "buyer") -> None:
    catalogue({"P001": 10_000, "P002": 10_000, "P003": 10_000})
    buyer = customer(prefix, password=None)
    for i in range(count):
        order_place(customer=buyer, items=[("P001", 1 + i % 3), ("P002", 1)], shipping_address=ADDRESS)


def couriers(positions: int, username: str = "rider") -> None:
    courier, _ = courier_with_delivery(username=username)
    start = datetime.now(UTC) - timedelta(seconds=positions + 5)
    for chunk in range(0, positions, 100):
        courier_locations_record(courier=courier, positions=route(start=start, count=positions)[chunk : chunk + 100])


def marks(count: int, subjects: int = 10, prefix: str = "m", batch: int = 500) -> None:
    """`count` chaos.Mark events over `subjects` subjects, each with its sequence, committed `batch` at a time."""
    for first in range(0, count, batch):
        with transaction.atomic():
            for i in range(first, min(first + batch, count)):
                publish(Mark, {"key": f"{prefix}{i}", "n": i}, subject=f"{prefix}-{i % subjects}", sequence=i // subjects + 1)


def work(count: int, seconds: float, prefix: str = "w") -> None:
    with transaction.atomic():
        for i in range(count):
            publish(Work, {"key": f"{prefix}{i}", "seconds": seconds})


def mixed(scale: int = 1, prefix: str = "x") -> None:
    """Every flow at once: users, a payroll, orders through the saga, a courier's positions, marks."""
    users(10 * scale, prefix=f"{prefix}u")
    payroll(10 * scale, prefix=f"{prefix}e")
    orders(3 * scale, prefix=f"{prefix}buyer")
    couriers(20 * scale, username=f"{prefix}rider")
    marks(50 * scale, prefix=f"{prefix}m")
