"""Settings for every process of the project.

The environment is read here and nowhere else. Defaults make `make run` work on a
laptop (SQLite file, RabbitMQ on localhost, console email); production differs
only by environment variables (see README.md, "Configuration").
"""

import hashlib
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)
# Only a development instance may run on the built-in key; production must set SECRET_KEY.
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # Before django.contrib.auth: where two apps have a command of the same name the earlier wins,
    # and accounts' createsuperuser registers users through the service that publishes the event.
    "accounts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "ninja",  # serves the API docs' assets locally
    "health_check",  # /health/ (events/observability/health.py); its status page's template
    "events",
    "notifications",
    "orders",
    "payroll",
    "payments",
    "inventory",
    "shipping",
]

MIDDLEWARE = [
    "project.api.ApiJsonErrorsMiddleware",  # outermost: sees every answer under /api/
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: a SQLite file by default, anything else through DATABASE_URL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db' / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Relay, workers and web write to one file: wait for the lock instead of failing,
    # and let readers proceed while one process writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
    # Tests start worker and relay subprocesses, so the test database must be a file too.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "db" / "test.sqlite3")}
# Persistent connections, checked before reuse (see also CELERY_DB_REUSE_MAX).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Email: the console in development; EMAIL_URL (smtp://user:pass@host:587) in production.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
if EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend":  # noqa: F821 - set by the line above
    # The console, as one INFO log record per email, not raw text on stdout.
    EMAIL_BACKEND = "project.mail.LoggingEmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="no-reply@localhost")

# --- Security: on by default whenever DEBUG is off, so `check --deploy` is clean in production.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)

# --- Services. Each name is a Celery task queue `<service>` and an event queue
# `<service>.events`; a worker runs `-Q` with one or more of them.
SERVICES = [
    "accounts",
    "notifications",
    "payroll",
    # commerce
    "orders",
    "payments",
    "inventory",
    "shipping",
    # courier locations and weather
    "delivery",
    "tracking",
    "analytics",
    "restaurant",
    "weather",
    "forecasting",
    "history",
    "maps",
]
# Base URLs of the services' HTTP APIs, for request-driven calls and event call-backs.
SERVICE_BASE_URL = env.str("SERVICE_BASE_URL", default="http://127.0.0.1:8000")

# --- Commerce (orders, payments, inventory, shipping). Each service's API may live elsewhere.
ORDERS_BASE_URL = env.str("ORDERS_BASE_URL", default=SERVICE_BASE_URL)
PAYMENTS_BASE_URL = env.str("PAYMENTS_BASE_URL", default=SERVICE_BASE_URL)
NOTIFICATIONS_BASE_URL = env.str("NOTIFICATIONS_BASE_URL", default=SERVICE_BASE_URL)
# Request-driven calls fail fast: seconds to connect, and to wait for an answer.
SERVICE_CONNECT_TIMEOUT = env.float("SERVICE_CONNECT_TIMEOUT", default=0.5)
SERVICE_READ_TIMEOUT = env.float("SERVICE_READ_TIMEOUT", default=2.0)
# Services calling each other's state-changing APIs send this in X-Service-Key (default: derived from SECRET_KEY).
SERVICE_API_KEY = env.str("SERVICE_API_KEY", default=hashlib.sha256(f"service-api:{SECRET_KEY}".encode()).hexdigest())
# The simulated payment provider, until its row in the admin (Payments → provider settings) exists.
PAYMENTS_PROVIDER_FAILURE_RATE = env.float("PAYMENTS_PROVIDER_FAILURE_RATE", default=0.0)
PAYMENTS_PROVIDER_LATENCY_MS = env.int("PAYMENTS_PROVIDER_LATENCY_MS", default=20)
PAYMENTS_PROVIDER_DOWN = env.bool("PAYMENTS_PROVIDER_DOWN", default=False)

# --- Scheduled jobs (celery-beat, database scheduler). The schedules are rows of
# django_celery_beat, created once by migrations from these values and edited in the admin after.
# Payroll: the month that has just ended is paid at this crontab ("minute hour day-of-month
# month day-of-week") in this time zone; a period is a calendar month in that zone.
PAYROLL_TIME_ZONE = env.str("PAYROLL_TIME_ZONE", default="UTC")
PAYROLL_CRONTAB = env.str("PAYROLL_CRONTAB", default="0 9 1 * *")
# Payslips (with their events) committed per transaction.
PAYROLL_CHUNK_SIZE = env.int("PAYROLL_CHUNK_SIZE", default=500)
# API tokens: calls per user and UTC hour; the hourly job (at this crontab, UTC) restores them.
API_CALLS_PER_HOUR = env.int("API_CALLS_PER_HOUR", default=1000)
API_LIMITS_CRONTAB = env.str("API_LIMITS_CRONTAB", default="0 * * * *")

# --- Event bus (events/). Documented in README.md, "Configuration".
EVENTS_SOURCE = env.str("EVENTS_SOURCE", default="django-services")
EVENTS_QUEUE_TYPE = env.str("EVENTS_QUEUE_TYPE", default="quorum")  # "classic" for brokers without quorum queues
EVENTS_MAX_MESSAGE_BYTES = env.int("EVENTS_MAX_MESSAGE_BYTES", default=256 * 1024)
EVENTS_RELAY_BATCH_SIZE = env.int("EVENTS_RELAY_BATCH_SIZE", default=500)
EVENTS_RELAY_POLL_SECONDS = env.float("EVENTS_RELAY_POLL_SECONDS", default=1.0)
# When commits came in fast enough while the relay's last batch was out, how long it waits for more before the next.
EVENTS_RELAY_LINGER_MS = env.float("EVENTS_RELAY_LINGER_MS", default=5.0)
EVENTS_RELAY_WAKE_ADDRESS = env.str("EVENTS_RELAY_WAKE_ADDRESS", default="127.0.0.1:8765")
# PostgreSQL: one relay publishes at a time (an advisory lock), the others stand by; it reads rows without leasing them.
EVENTS_RELAY_SINGLE_ACTIVE = env.bool("EVENTS_RELAY_SINGLE_ACTIVE", default=False)
EVENTS_CONSUMER_PREFETCH = env.int("EVENTS_CONSUMER_PREFETCH", default=500)
EVENTS_CONSUMER_BATCH_SIZE = env.int("EVENTS_CONSUMER_BATCH_SIZE", default=200)
EVENTS_CONSUMER_BATCH_WINDOW_MS = env.float("EVENTS_CONSUMER_BATCH_WINDOW_MS", default=5.0)
# While handler tasks sent before are still queued, a batch waits for them (growing) at most this long; 0: never.
EVENTS_CONSUMER_MAX_HOLD_MS = env.float("EVENTS_CONSUMER_MAX_HOLD_MS", default=250.0)
# Ordered handlers (`@subscribe(..., ordered=True)`): subjects are spread over this many lanes (threads) per worker.
EVENTS_ORDERED_LANES = env.int("EVENTS_ORDERED_LANES", default=4)
EVENTS_ORDERED_PREFETCH = env.int("EVENTS_ORDERED_PREFETCH", default=200)
EVENTS_HANDLER_MAX_ATTEMPTS = env.int("EVENTS_HANDLER_MAX_ATTEMPTS", default=6)
# An event whose task came back unfinished this many times (its worker died each time) is a dead letter.
EVENTS_HANDLER_MAX_WORKER_LOSSES = env.int("EVENTS_HANDLER_MAX_WORKER_LOSSES", default=3)
# A handler task hands its remaining events on after this long, keeping its transaction short.
EVENTS_HANDLER_BATCH_SECONDS = env.float("EVENTS_HANDLER_BATCH_SECONDS", default=5.0)
EVENTS_RETRY_BACKOFF_SECONDS = env.float("EVENTS_RETRY_BACKOFF_SECONDS", default=2.0)
# Must stay well under RabbitMQ's consumer_timeout (30 min by default).
EVENTS_RETRY_BACKOFF_MAX_SECONDS = env.float("EVENTS_RETRY_BACKOFF_MAX_SECONDS", default=600.0)

# --- Observability (events/observability/). /health/ fails when the oldest unpublished event is
# older than this, or when a service in EVENTS_HEALTH_SERVICES has no consumer on its event queue.
EVENTS_HEALTH_MAX_RELAY_LAG_SECONDS = env.float("EVENTS_HEALTH_MAX_RELAY_LAG_SECONDS", default=60.0)
EVENTS_HEALTH_SERVICES = env.list("EVENTS_HEALTH_SERVICES", default=SERVICES)
# Seconds each broker probe of /health/ may take.
EVENTS_HEALTH_TIMEOUT_SECONDS = env.float("EVENTS_HEALTH_TIMEOUT_SECONDS", default=2.0)
# Where every process writes its metrics for /metrics to add up (prometheus-client's multiprocess
# mode; prometheus-client reads the variable itself). Empty: each process counts in its own memory.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

# --- Celery (namespace CELERY_). JSON only, everywhere.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="amqp://guest:guest@localhost:5672//")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# No results are stored, so there is nothing to expire: keeps celery.backend_cleanup out of beat.
CELERY_RESULT_EXPIRES = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_EVENT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
# A task message is not lost if the broker fails right after publishing it.
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The level queues of native delayed delivery (celery_delayed_0..27) are classic: a quorum queue of
# RabbitMQ 3.10 expires a message at its head only when something else happens on that queue, so a
# lone retry could wait there for ever. A broker that has them as quorum queues from before keeps
# refusing the redeclaration: delete the empty celery_delayed_* queues once (see README).
CELERY_BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE = "classic"
# Tasks are acknowledged after they ran; a killed worker hands its task to another.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 5 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 4 * 60
# Task events cost four extra broker messages per task; Flower switches them on in the workers
# it watches, and CELERY_TASK_EVENTS=True switches them on from the start.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_TASK_EVENTS", default=False)
CELERY_TASK_SEND_SENT_EVENT = CELERY_WORKER_SEND_TASK_EVENTS
# Celery would close a worker's database connection after every task; handler tasks instead drop
# it, like a request does, when it is broken or older than CONN_MAX_AGE (events/handling.py).
CELERY_DB_REUSE_MAX = 1000

# Task queues (`default` and one per service, bound to the topic exchange `tasks`) are built
# in events/topology.py with the rest of the broker names; see project/celery.py.
CELERY_TASK_DEFAULT_QUEUE = "default"
# A service's own tasks run on its own queue (and worker).
CELERY_TASK_ROUTES = {"payroll.*": {"queue": "payroll"}, "accounts.*": {"queue": "accounts"}}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# One handler, on the root logger, for every process (Celery's workers and beat use it too, see
# project/celery.py). The "django" logger is named so that Django's default handlers on it are
# replaced: left alone, each of its records would print twice, once plain and once here.
# Every record carries eventId, correlationId, service and handler (empty where none applies); with
# LOG_FORMAT=json each is one JSON object per line (events/observability/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "events.observability.logs.JsonFormatter"},
    },
    "filters": {"event_context": {"()": "events.observability.logs.EventContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["event_context"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO"},
        "django.db.backends": {"level": "WARNING"},
        "amqp": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# In development static files are served straight from the apps (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# --- Event streams: courier locations (delivery → tracking, analytics, restaurant) and weather
# (weather → forecasting, history, maps, and notifications for rain alerts). See README.md.
INSTALLED_APPS += ["delivery", "tracking", "analytics", "restaurant", "weather", "forecasting", "history", "maps"]
# A verified Basic-auth password is remembered this long (project/auth.py).
API_BASIC_AUTH_CACHE_SECONDS = env.int("API_BASIC_AUTH_CACHE_SECONDS", default=3600)
# How far ahead of the server's clock a courier's or station's time may be.
DELIVERY_CLOCK_SKEW_SECONDS = env.float("DELIVERY_CLOCK_SKEW_SECONDS", default=30)
# Location updates older than this when a consumer gets them are skipped and counted as late.
TRACKING_MAX_AGE_SECONDS = env.float("TRACKING_MAX_AGE_SECONDS", default=60)
ANALYTICS_MAX_AGE_SECONDS = env.float("ANALYTICS_MAX_AGE_SECONDS", default=24 * 3600)
RESTAURANT_MAX_AGE_SECONDS = env.float("RESTAURANT_MAX_AGE_SECONDS", default=300)
# Restaurant milestones: at the pickup, near the drop-off, at the drop-off.
RESTAURANT_PICKUP_RADIUS_M = env.float("RESTAURANT_PICKUP_RADIUS_M", default=50)
RESTAURANT_NEARBY_RADIUS_M = env.float("RESTAURANT_NEARBY_RADIUS_M", default=500)
RESTAURANT_ARRIVED_RADIUS_M = env.float("RESTAURANT_ARRIVED_RADIUS_M", default=30)
# A reading with more rain than this (mm/h) also publishes a RainAlert.
WEATHER_RAIN_ALERT_MM_PER_HOUR = env.float("WEATHER_RAIN_ALERT_MM_PER_HOUR", default=4.0)
# Readings forecasting keeps per region and predicts from.
FORECASTING_WINDOW = env.int("FORECASTING_WINDOW", default=60)
# The simulated courier and weather station of `make run` (beat jobs; their schedules are in the admin).
SIMULATION_ENABLED = env.bool("SIMULATION_ENABLED", default=DEBUG)
