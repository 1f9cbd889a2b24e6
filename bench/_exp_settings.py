from bench.settings import *  # noqa
CELERY_DB_REUSE_MAX = 1000
