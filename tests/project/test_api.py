"""The API against its own OpenAPI document, with schemathesis: no 5xx, every answer as documented."""

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

schema = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())


@pytest.fixture
def keep_test_connection() -> Iterator[None]:
    """As Django's test client does: a request must not close the connection holding the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@pytest.mark.usefixtures("keep_test_connection")
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_openapi_document(case: schemathesis.Case) -> None:
    # A generated Host header is the transport's, not the API's: Django refuses one that is not a valid host name
    # (400, in JSON) before any route is chosen, for every operation alike.
    for name in [name for name in (case.headers or {}) if name.lower() == "host"]:
        del case.headers[name]
    # The password rules and case-insensitive usernames are more than JSON Schema can say, so data
    # the document allows may still be refused (422, 409): positive_data_acceptance cannot hold.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
