import logging

import pytest

from project.celery import app


@pytest.mark.django_db(transaction=True)
def test_beat_schedules_no_result_cleanup_while_results_are_disabled() -> None:
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    scheduler = DatabaseScheduler(app=app)

    assert app.conf.result_expires is None
    assert "celery.backend_cleanup" not in scheduler.schedule
    assert not PeriodicTask.objects.filter(name="celery.backend_cleanup").exists()


def test_workers_log_through_djangos_logging_alone() -> None:
    root = logging.getLogger()
    handlers_before = list(root.handlers)
    level_before = root.level
    try:
        from celery.app.log import Logging

        Logging._setup = False
        handled = app.log.setup(loglevel="INFO", redirect_stdouts=True)

        assert handled  # a receiver of setup_logging did it: Celery adds no handler and leaves stdout alone
        assert [type(h).__name__ for h in root.handlers] == ["StreamHandler"]
        assert not logging.getLogger("django").handlers
        assert root.level == logging.INFO
    finally:
        root.handlers[:] = handlers_before
        root.setLevel(level_before)
        Logging._setup = False
