from django.conf import settings
from django.db import migrations

from project.beat import ensure_crontab_task

NAME = "accounts: restore API call limits"


def create_schedule(apps, schema_editor):
    ensure_crontab_task(
        apps,
        name=NAME,
        task="accounts.restore_token_limits",
        crontab=settings.API_LIMITS_CRONTAB,
        zone="UTC",
        queue="accounts",
        description="Restores every user's hourly API call limit and publishes users.TokenLimitsRestored, "
        "once per UTC hour: a second beat or a retry in the same hour does nothing.",
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
