"""The admin's *Periodic tasks* list, with each schedule's next run (django-celery-beat shows only the last)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import admin
from django.utils import timezone
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask


def next_run(task: PeriodicTask, now: datetime | None = None) -> datetime | None:
    """When beat next sends `task`, by its schedule and its last run (None when it will not)."""
    if not task.enabled or (task.one_off and task.total_run_count):
        return None
    now = now or timezone.now()
    schedule = task.schedule
    last = task.last_run_at or task.date_changed or now
    if task.clocked_id:
        return task.clocked.clocked_time
    when = now + schedule.remaining_estimate(last) + timedelta(milliseconds=500)
    return max(filter(None, [task.start_time, when.replace(microsecond=0)]))


class PeriodicTaskWithNextRunAdmin(PeriodicTaskAdmin):
    list_display = ("name", "enabled", "scheduler", "next_run_at", "last_run_at", "task", "queue", "one_off")

    @admin.display(description="next run")
    def next_run_at(self, task: PeriodicTask) -> str:
        when = next_run(task)
        return timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S %Z") if when else "-"


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskWithNextRunAdmin)
