"""Error bodies every API shares (see project/api.py)."""

from typing import Any

from ninja import Schema


class ErrorOut(Schema):
    detail: str


class ValidationErrorOut(Schema):
    detail: list[dict[str, Any]]


# What any operation that reads a JSON body may answer besides its own results.
BODY_ERRORS: dict[int, type[Schema]] = {400: ErrorOut, 413: ErrorOut, 415: ErrorOut, 422: ValidationErrorOut}
