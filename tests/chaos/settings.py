"""Settings of a chaos run and of the processes it starts: the test settings, plus the `chaos` service.

The broker heartbeat is short so that a stopped worker (SIGSTOP) is noticed by RabbitMQ within
seconds, as it would be in production after `broker_heartbeat` (120 s by default).
"""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.chaos"]  # noqa: F405
SERVICES = [*SERVICES, "chaos"]  # noqa: F405
CELERY_BROKER_HEARTBEAT = 4
SIMULATION_ENABLED = False

# The chaos run's database is its own: `db/chaos.sqlite3`, or `chaos_<name>` on PostgreSQL.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "db" / "chaos.sqlite3")}  # noqa: F405
else:
    DATABASES["default"]["TEST"] = {"NAME": f"chaos_{DATABASES['default']['NAME']}"}  # noqa: F405
