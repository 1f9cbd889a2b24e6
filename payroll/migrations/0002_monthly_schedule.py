from django.conf import settings
from django.db import migrations

from project.beat import ensure_crontab_task

NAME = "payroll: pay the month that ended"  # payroll.schedule.SCHEDULE_NAME


def create_schedule(apps, schema_editor):
    ensure_crontab_task(
        apps,
        name=NAME,
        task="payroll.run_due",
        crontab=settings.PAYROLL_CRONTAB,
        zone=settings.PAYROLL_TIME_ZONE,
        queue="payroll",
        description="Pays every active employee for the latest month that has ended in the schedule's time zone, "
        "once per month: a second beat, a retry or a late start finds the month paid (or finishes it).",
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("payroll", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
