"""Settings for `make bench`: the project's settings plus the bench app and its service.

Used through DJANGO_SETTINGS_MODULE=bench.settings (with the repository root on PYTHONPATH) by
bench/run.py and by the relay and worker subprocesses it starts. The database, the broker vhost
and the relay's wake address come from the environment, which run.py sets.
"""

from project.settings import *  # noqa: F403
from project.settings import CELERY_TASK_ROUTES, INSTALLED_APPS, SERVICES

INSTALLED_APPS = [*INSTALLED_APPS, "bench.benchapp"]
# `bench` is a service like any other: task queue `bench`, event queue `bench.events`; `bench_ordered` has an
# ordered handler (bench/ordered.py).
SERVICES = [*SERVICES, "bench", "bench_ordered"]
# Plain `.delay()` of the bench task lands on the same kind of queue as the bus's handler tasks.
CELERY_TASK_ROUTES = {**CELERY_TASK_ROUTES, "bench.*": {"queue": "bench"}}
