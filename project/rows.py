"""Row helpers for handlers that work on many rows at once (batch handlers)."""

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db import models

from events.rowsets import insert as insert_rows
from events.rowsets import update as update_rows

__all__ = ["insert_rows", "lock_or_create", "update_rows"]

M = TypeVar("M", bound=models.Model)


def lock_or_create(model: type[M], field: str, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, M]:
    """The rows of `model` whose unique `field` is one of `rows`' keys, locked (SELECT … FOR UPDATE) in the order
    of the keys, so that concurrent transactions take them in the same order and cannot deadlock; a missing row
    is created with the fields `rows` gives for it. Must run inside a transaction.

    Two transactions creating the same row at once: the second fails with an IntegrityError, and its handler
    run is retried like any failed run (by then the row exists)."""
    keys = sorted(rows)
    locked = model.objects.select_for_update().filter(**{f"{field}__in": keys}).order_by(field)
    found = {getattr(row, field): row for row in locked}
    missing = [model(**{field: key, **rows[key]}) for key in keys if key not in found]
    if missing:
        found.update({getattr(row, field): row for row in model.objects.bulk_create(missing)})
    return found
