import pytest
from django.apps import apps
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from project.beat import ensure_crontab_task, parse_crontab


def test_a_crontab_is_five_fields() -> None:
    assert parse_crontab("0 9 1 * *") == {
        "minute": "0",
        "hour": "9",
        "day_of_month": "1",
        "month_of_year": "*",
        "day_of_week": "*",
    }
    with pytest.raises(ValueError, match="five fields"):
        parse_crontab("0 9 1 *")


@pytest.mark.django_db
def test_a_schedule_is_created_once_and_an_edit_in_the_admin_is_kept() -> None:
    def ensure() -> None:
        ensure_crontab_task(
            apps, name="job", task="x.y", crontab="30 6 * * 1", zone="Europe/Berlin", queue="default", description="d"
        )

    ensure()
    task = PeriodicTask.objects.get(name="job")
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week, str(task.crontab.timezone)) == (
        "30",
        "6",
        "1",
        "Europe/Berlin",
    )
    task.crontab = CrontabSchedule.objects.create(minute="0", hour="7", timezone="UTC")
    task.save()

    ensure()  # migrations run again

    assert PeriodicTask.objects.filter(name="job").count() == 1
    assert PeriodicTask.objects.get(name="job").crontab.hour == "7"
