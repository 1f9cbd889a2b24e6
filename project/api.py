"""The JSON API at /api/ (django-ninja): one NinjaAPI, to which each service adds its router.

OpenAPI document at /api/openapi.json, interactive docs at /api/docs.

Every answer under /api/ is JSON, and bad input gets a 4xx whose `detail` says what is wrong:
- 422: data that does not validate, as a list of {loc, msg, type} entries;
- 400: a body that is not JSON; 415: a body not sent as application/json;
- 413: a body over DATA_UPLOAD_MAX_MEMORY_SIZE;
- 404 / 405: no such path / method (answered outside ninja; `ApiJsonErrorsMiddleware` makes
  those JSON too).
A database that cannot be reached is answered 503 with `Retry-After`. An unexpected error is
logged and answered 500 with a JSON body, never with a debug page: it is a fault of the server,
and saying so tells clients and monitoring the truth.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.parser import Parser

from accounts.api import router as accounts_router
from accounts.api import tokens_router
from accounts.auth import ApiTokenAuth, CallLimitExhausted
from analytics.api import router as analytics_router
from delivery.api import router as delivery_router
from events.api import router as events_router
from forecasting.api import router as forecasting_router
from history.api import router as history_router
from maps.api import router as maps_router
from notifications.api import router as notifications_router
from orders.api import checkout_router, products_router
from orders.api import router as orders_router
from payments.api import router as payments_router
from payroll.api import router as payroll_router
from restaurant.api import router as restaurant_router
from tracking.api import router as tracking_router
from weather.api import router as weather_router

logger = logging.getLogger(__name__)

PREFIX = "/api/"


class BodyNotJson(Exception):
    pass


class JsonOnlyParser(Parser):
    """Reads request bodies as JSON, and only when they say they are JSON."""

    def parse_body(self, request: HttpRequest) -> Any:
        if request.content_type != "application/json":
            raise BodyNotJson(
                f"send the body as JSON with Content-Type: application/json (got {request.content_type or 'none'!r})"
            )
        return json.loads(request.body)


api = NinjaAPI(
    title="Django event services",
    version="1.0",
    description="JSON APIs of the services. Errors are JSON with a `detail` that says what is wrong.",
    parser=JsonOnlyParser(),
    urls_namespace="api",
    # Every operation needs `Authorization: Bearer <token>` unless it says otherwise (sign-up, token creation).
    auth=ApiTokenAuth(),
)
api.add_router("/users", accounts_router)
api.add_router("/tokens", tokens_router)
api.add_router("/payroll", payroll_router)
api.add_router("/orders", orders_router)
api.add_router("/products", products_router)
api.add_router("/checkout", checkout_router)
api.add_router("/payments", payments_router)
api.add_router("/notifications", notifications_router)
api.add_router("/couriers", delivery_router)
api.add_router("/tracking/deliveries", tracking_router)
api.add_router("/analytics/deliveries", analytics_router)
api.add_router("/restaurant/deliveries", restaurant_router)
api.add_router("/weather", weather_router)
api.add_router("/forecasts", forecasting_router)
api.add_router("/history", history_router)
api.add_router("/maps", maps_router)
api.add_router("/events", events_router)


def error(request: HttpRequest, status: int, detail: Any) -> HttpResponse:
    return api.create_response(request, {"detail": detail}, status=status)


@api.exception_handler(AuthenticationError)
def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = error(request, 401, "send a valid API token: Authorization: Bearer <token> (POST /api/tokens/ makes one)")
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


@api.exception_handler(CallLimitExhausted)
def call_limit_exhausted(request: HttpRequest, exc: CallLimitExhausted) -> HttpResponse:
    response = error(request, 429, str(exc))
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(HttpError)
def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # ninja wraps whatever the parser raised into "400 Cannot parse request body"; say what it was.
    cause = exc.__cause__
    if isinstance(cause, BodyNotJson):
        return error(request, 415, str(cause))
    if isinstance(cause, json.JSONDecodeError | UnicodeDecodeError):
        return error(request, 400, f"the body is not valid JSON: {cause}")
    return error(request, exc.status_code, str(exc))


@api.exception_handler(RequestDataTooBig)
def body_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return error(request, 413, f"the body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes this API accepts")


@api.exception_handler(DjangoValidationError)
def invalid(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    """A ValidationError from a service: the same shape as ninja's own 422 entries."""
    fields = exc.error_dict if hasattr(exc, "error_dict") else {"__all__": exc.error_list}
    detail = [
        {"type": e.code or "invalid", "loc": ["body", "payload", *([] if field == "__all__" else [field])], "msg": message}
        for field, errors in fields.items()
        for e in errors
        for message in e.messages
    ]
    return error(request, 422, detail)


@api.exception_handler(DatabaseError)
def database_unavailable(request: HttpRequest, exc: DatabaseError) -> HttpResponse:
    """The database cannot be reached (a restart, a failover): not the client's fault, and worth trying again soon."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return unexpected(request, exc)
    logger.warning("%s %s: database unavailable: %s", request.method, request.path, exc)
    response = error(request, 503, "the database is unavailable right now; try again shortly")
    response["Retry-After"] = "5"
    return response


@api.exception_handler(Exception)
def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.error("%s %s failed", request.method, request.path, exc_info=exc)
    return error(request, 500, "internal server error; it has been logged")


class ApiJsonErrorsMiddleware:
    """Makes the error answers under /api/ that ninja does not produce JSON as well.

    Django's own 404 for an unknown path, ninja's 405 for a method a path does not have, a 400
    for a bad Host header, a server error page: each keeps its status and headers (Allow, say)
    and gets a JSON body that says what is wrong.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            not request.path.startswith(PREFIX)
            or response.status_code < 400
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        detail = self.detail(request, response)
        json_response = HttpResponse(
            json.dumps({"detail": detail}), status=response.status_code, content_type="application/json; charset=utf-8"
        )
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                json_response[header] = response[header]
        return json_response

    @staticmethod
    def detail(request: HttpRequest, response: HttpResponse) -> str:
        status = response.status_code
        if status == 404:
            return f"no API endpoint at {request.path}; see /api/docs"
        if status == 405:
            return f"{request.method} is not allowed on {request.path}; allowed: {response.get('Allow', 'none')}"
        try:
            phrase = HTTPStatus(status).phrase.lower()
        except ValueError:
            phrase = "error"
        return f"{phrase}" + ("; it has been logged" if status >= 500 else "")
