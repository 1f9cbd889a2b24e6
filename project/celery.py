import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _configure_bus(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    from events import topology

    sender.conf.task_queues = topology.task_queues(settings.SERVICES)


# The event consumer runs inside every worker, for the services named on its -Q.
app.steps["consumer"].add("events.consumer:EventConsumerStep")


@worker_init.connect
def _declare_topology(**kwargs: object) -> None:
    # Before the worker's own start-up binds its queues for delayed delivery, so they must exist.
    from events import topology

    topology.declare_quietly()
