"""The project's celery-beat schedules, created once (by migrations) as rows of django_celery_beat.

Rows, not code: the admin's *Periodic tasks* shows them with their schedule and last run, and an
edit there is what beat runs. `ensure_crontab_task` creates a schedule only when the task's row
does not exist yet, so running migrations again never undoes an edit made in the admin.
"""

from __future__ import annotations

from typing import Any


def parse_crontab(text: str) -> dict[str, str]:
    """'0 9 1 * *' → the five crontab fields; ValueError naming the expected form otherwise."""
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"a crontab is five fields, 'minute hour day-of-month month day-of-week' (got {text!r})")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return {
        "minute": minute,
        "hour": hour,
        "day_of_month": day_of_month,
        "month_of_year": month_of_year,
        "day_of_week": day_of_week,
    }


def ensure_crontab_task(apps: Any, *, name: str, task: str, crontab: str, zone: str, queue: str, description: str) -> None:
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    if PeriodicTask.objects.filter(name=name).exists():
        return
    schedule, _ = CrontabSchedule.objects.get_or_create(**parse_crontab(crontab), timezone=zone)
    PeriodicTask.objects.create(name=name, task=task, crontab=schedule, queue=queue, description=description)
