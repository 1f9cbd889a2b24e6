import os

from celery import Celery

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
