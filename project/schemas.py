"""Error bodies every API shares (see project/api.py)."""

from typing import Any

from ninja import Schema


class ErrorOut(Schema):
    detail: str


class ValidationErrorOut(Schema):
    detail: list[dict[str, Any]]


# What any operation that reads a JSON body may answer besides its own results.
BODY_ERRORS: dict[int, type[Schema]] = {400: ErrorOut, 413: ErrorOut, 415: ErrorOut, 422: ValidationErrorOut}
# What any operation that needs a token may answer besides its own results.
AUTH_ERRORS: dict[int, type[Schema]] = {401: ErrorOut, 429: ErrorOut}
