"""The failed-message console: open dead letters grouped by cause; retry or archive a group.

A group is (service, handler, stage, error fingerprint). The fingerprint is the error's type and
first line with its variable parts masked (ids, numbers, quoted values), so "card 4242 declined
for ORD-12" and "card 1111 declined for ORD-98" are one group. It is computed when the dead
letter is stored (`fingerprint`) and kept on the row, so grouping is one query.

Retrying a group replays each of its open dead letters exactly as the admin's *Replay* does
(`deadletters.dead_letter_replay`): to its handler with fresh attempts, or back onto the
service's queue. Archiving sets them aside as `archived`: they stay visible, no longer open.
The admin page and `manage.py deadletters` call these same functions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import Count, Max, Min

from events.models import DeadLetter

_MASKS = [
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), "<uuid>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"\b(?=[0-9A-Za-z_-]*\d)[0-9A-Za-z_-]{6,}\b"), "<id>"),  # ids with digits: ORD-1a2b3c, TRK9ab, 0x7f…
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
]


def signature(reason: str) -> str:
    """The error's first line with its variable parts masked."""
    text = (reason or "").strip().splitlines()[0] if (reason or "").strip() else ""
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text[:300]


def fingerprint(*, service: str, handler: str, stage: str, reason: str) -> str:
    return hashlib.sha1(f"{service}\n{handler}\n{stage}\n{signature(reason)}".encode()).hexdigest()


@dataclass
class Group:
    fingerprint: str
    service: str
    handler: str
    stage: str
    count: int
    first_seen: datetime
    last_seen: datetime
    signature: str = ""
    example: str = ""
    event_types: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.fingerprint[:12]


def groups(status: str = DeadLetter.Status.OPEN) -> list[Group]:
    """The groups of dead letters in `status`, the most recent first."""
    rows = (
        DeadLetter.objects.filter(status=status)
        .values("fingerprint", "service", "handler", "stage")
        .annotate(count=Count("id"), first_seen=Min("created_at"), last_seen=Max("created_at"), latest=Max("id"))
        .order_by("-last_seen")
    )
    rows = list(rows)
    examples = {
        letter.pk: letter
        for letter in DeadLetter.objects.filter(pk__in=[row["latest"] for row in rows]).only("reason", "event_type")
    }
    result = []
    for row in rows:
        example = examples.get(row.pop("latest"))
        reason = example.reason if example else ""
        result.append(
            Group(**row, signature=signature(reason), example=reason.strip().splitlines()[0][:500] if reason.strip() else "")
        )
    types = (
        DeadLetter.objects.filter(status=status, fingerprint__in=[g.fingerprint for g in result])
        .order_by()
        .values_list("fingerprint", "event_type")
        .distinct()
    )
    by_group: dict[str, list[str]] = {}
    for fp, event_type in types:
        by_group.setdefault(fp, []).append(event_type or "?")
    for group in result:
        group.event_types = sorted(by_group.get(group.fingerprint, []))
    return result


class UnknownGroup(Exception):
    pass


def resolve(key: str) -> str:
    """The full fingerprint of the group `key` names (a prefix of at least 6 characters)."""
    key = key.strip().lower()
    if len(key) < 6 or not re.fullmatch(r"[0-9a-f]+", key):
        raise UnknownGroup(f"{key!r} is not a group (give at least 6 hex characters of its key)")
    matching = DeadLetter.objects.filter(fingerprint__startswith=key).order_by()
    found = set(matching.values_list("fingerprint", flat=True).distinct()[:2])
    if not found:
        raise UnknownGroup(f"no dead letters in a group {key!r}")
    if len(found) > 1:
        raise UnknownGroup(f"{key!r} names more than one group: give more characters")
    return found.pop()


@dataclass
class RetryResult:
    replayed: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


def group_retry(*, fingerprint: str) -> RetryResult:
    """Replay every open dead letter of the group; those that cannot be replayed stay open, with why."""
    from events.deadletters import NotReplayable, dead_letter_replay
    from events.errors import EventError

    result = RetryResult()
    for letter in DeadLetter.objects.filter(fingerprint=fingerprint, status=DeadLetter.Status.OPEN).order_by("id"):
        try:
            dead_letter_replay(dead_letter=letter)
        except (NotReplayable, EventError) as exc:
            result.refused.append((letter.pk, str(exc)))
        else:
            result.replayed += 1
    return result


def group_archive(*, fingerprint: str) -> int:
    """Set the group's open dead letters aside; returns how many."""
    return DeadLetter.objects.filter(fingerprint=fingerprint, status=DeadLetter.Status.OPEN).update(
        status=DeadLetter.Status.ARCHIVED, archived_at=datetime.now(UTC)
    )


def dead_letter_archive(*, dead_letter: DeadLetter) -> None:
    DeadLetter.objects.filter(pk=dead_letter.pk, status=DeadLetter.Status.OPEN).update(
        status=DeadLetter.Status.ARCHIVED, archived_at=datetime.now(UTC)
    )
