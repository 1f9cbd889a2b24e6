import os

import pytest

from tests import broker


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    if config.getoption("ds", default=None) == "tests.chaos.settings":
        return  # the fault-injection suite starts RabbitMQ nodes of its own (tests/chaos/rabbit.py)
    if not broker.reachable():
        pytest.exit(broker.HOW_TO_START, returncode=3)
    try:
        broker.admin()
    except broker.BrokerAdminUnavailable as exc:
        pytest.exit(str(exc), returncode=3)
    vhost = broker.create_vhost()
    config._test_vhost = vhost  # type: ignore[attr-defined]
    url = broker.url(vhost)
    os.environ["CELERY_BROKER_URL"] = url  # for worker and relay subprocesses
    settings.CELERY_BROKER_URL = url
    settings.EVENTS_RELAY_WAKE_ADDRESS = ""  # in-process relays are driven by the tests
    # Workers run in threads of this process: connections closed after each task, so that the test
    # database can be dropped at the end.
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0

    from project.celery import app

    app.conf.broker_url = url


def pytest_unconfigure(config: pytest.Config) -> None:
    vhost = getattr(config, "_test_vhost", None)
    if vhost:
        try:
            broker.delete_vhost(vhost)
        except Exception as exc:  # the results are in; say what is left behind
            print(f"\ncould not delete the test vhost {vhost!r}: {exc}")
