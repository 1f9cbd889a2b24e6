"""Settings of test runs and of the worker and relay processes tests start: the project's, plus the test service."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.apps.TestsConfig"]  # noqa: F405
# Tests publish to a service of their own; it must be known before Celery reads its settings.
SERVICES = [*SERVICES, "testsvc"]  # noqa: F405
