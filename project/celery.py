import os

from celery import Celery
from celery.signals import beat_init, setup_logging, worker_init, worker_process_init, worker_process_shutdown

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


@setup_logging.connect
def _use_django_logging(loglevel: int | None = None, **kwargs: object) -> None:
    """Workers and beat log through Django's LOGGING alone: one line per record, one format.

    Without this Celery adds its own handler next to Django's (every line twice) and turns the
    process's stdout into WARNING records of `celery.redirected`. The -l/--loglevel option of the
    command line still sets the level.
    """
    import logging
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@worker_init.connect
def _declare_topology(**kwargs: object) -> None:
    # Before the worker's own start-up binds its queues for delayed delivery, so they must exist.
    from events import topology

    topology.declare_quietly()


@worker_init.connect
@worker_process_init.connect
def _worker_telemetry(**kwargs: object) -> None:
    """OpenTelemetry, when the OTEL_* environment asks for it: in the worker's main process (the consumer
    step runs there), and again in each prefork child (a no-op there: the SDK's batching survives the fork)."""
    from events import telemetry

    telemetry.setup("worker")


@worker_process_shutdown.connect
def _flush_telemetry(**kwargs: object) -> None:
    # A prefork child may end without running atexit handlers: export its last spans now.
    from events import telemetry

    telemetry.flush()


@beat_init.connect
def _beat_telemetry(**kwargs: object) -> None:
    from events import telemetry

    telemetry.setup("beat")
