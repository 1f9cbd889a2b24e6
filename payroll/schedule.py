"""When a month is due to be paid, read from the schedule itself (the beat row the admin edits).

A month is *due* once the schedule's first time after the month's end (in PAYROLL_TIME_ZONE) has
passed: with the default `0 9 1 * *`, October is due from 09:00 on 1 November. The job pays the
latest due month; it does not trust beat's record of when it last ran:

- beat sends the job at the due time; a second beat sends it too; a retry runs it again: the
  month is found paid (or is finished) and nobody is paid twice;
- beat down at the due time: django-celery-beat does not run a missed crontab entry when it
  starts later (it only loads crontab entries within two hours of the current hour), so every
  beat start sends the job once (`beat_init`, in payroll/tasks.py) as a catch-up check. It pays
  the latest due month if it is not paid and the payroll has a history to continue (an earlier
  run); a fresh installation waits for its first pay day or a run from the admin. Only the
  latest due month is caught up: months missed before it are run from the admin.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from django_celery_beat.models import PeriodicTask

from payroll.periods import last_ended_period, payroll_zone

SCHEDULE_NAME = "payroll: pay the month that ended"


def schedule_row() -> PeriodicTask | None:
    return PeriodicTask.objects.select_related("crontab").filter(name=SCHEDULE_NAME).first()


def first_fire_at_or_after(cron: Any, start: datetime) -> datetime | None:
    """The first time at or after `start` that a crontab (Celery's, with its own time zone) matches."""
    zone = cron.tz
    day = start.astimezone(zone).date()
    for _ in range(366 * 5):
        if day.month in cron.month_of_year and day.day in cron.day_of_month and day.isoweekday() % 7 in cron.day_of_week:
            for hour in sorted(cron.hour):
                for minute in sorted(cron.minute):
                    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                    if candidate >= start:
                        return candidate
        day += timedelta(days=1)
    return None


def month_after(period: date) -> date:
    return date(period.year + period.month // 12, period.month % 12 + 1, 1)


def month_before(period: date) -> date:
    return date(period.year - (period.month == 1), (period.month - 2) % 12 + 1, 1)


def latest_due_period(now: datetime, task: PeriodicTask | None = None) -> date:
    """The latest month whose pay day (by the schedule) has come at `now`."""
    period = last_ended_period(now)
    task = task or schedule_row()
    if task is None or task.crontab is None:
        return period
    zone = payroll_zone()
    end = datetime.combine(month_after(period), datetime.min.time(), tzinfo=zone)
    due = first_fire_at_or_after(task.crontab.schedule, end)
    return period if due is not None and due <= now else month_before(period)
