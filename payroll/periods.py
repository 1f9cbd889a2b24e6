"""Payroll periods: a period is a calendar month in PAYROLL_TIME_ZONE, stored as its first day."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def payroll_zone() -> ZoneInfo:
    return ZoneInfo(settings.PAYROLL_TIME_ZONE)


def last_ended_period(now: datetime | None = None, zone: ZoneInfo | None = None) -> date:
    """The latest month that has fully ended at `now` in the payroll's time zone."""
    local = (now or timezone.now()).astimezone(zone or payroll_zone())
    if local.month == 1:
        return date(local.year - 1, 12, 1)
    return date(local.year, local.month - 1, 1)


def parse_period(text: str) -> date:
    """'2026-10' → date(2026, 10, 1); ValueError with a clear message otherwise."""
    match = _PERIOD.match(text.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"a period is a month written YYYY-MM, e.g. 2026-10 (got {text!r})")
    return date(int(match[1]), int(match[2]), 1)


def format_period(period: date) -> str:
    return f"{period:%Y-%m}"
