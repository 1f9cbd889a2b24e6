"""Dead letters grouped by cause, for scripts: list the groups, retry or archive one, retry one dead letter.

python manage.py deadletters                       # open groups: key, count, first/last seen, service, handler, error
python manage.py deadletters --status archived     # (or replayed)
python manage.py deadletters --json                # the same as JSON
python manage.py deadletters retry <group key>     # replay every open dead letter of the group
python manage.py deadletters retry --id <id>       # replay one dead letter
python manage.py deadletters archive <group key>   # set the group's open dead letters aside
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from events.deadletters import NotReplayable, dead_letter_replay
from events.errors import EventError
from events.models import DeadLetter
from events.observability import console


class Command(BaseCommand):
    help = "List dead letters grouped by cause; retry or archive a group, or retry one dead letter."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", nargs="?", choices=["list", "retry", "archive"], default="list")
        parser.add_argument("group", nargs="?", help="the group's key (at least 6 characters of it)")
        parser.add_argument("--id", type=int, help="retry this one dead letter")
        parser.add_argument("--status", default=DeadLetter.Status.OPEN, choices=DeadLetter.Status.values)
        parser.add_argument("--json", action="store_true", help="list as JSON")

    def handle(self, *args: Any, action: str, group: str | None, id: int | None, status: str, json: bool, **options: Any) -> None:
        if action == "list":
            self._list(status, as_json=json)
            return
        if action == "retry" and id is not None:
            letter = DeadLetter.objects.filter(pk=id).first()
            if letter is None:
                raise CommandError(f"no dead letter #{id}")
            if letter.status != DeadLetter.Status.OPEN:
                raise CommandError(f"dead letter #{id} is {letter.status}, not open")
            try:
                dead_letter_replay(dead_letter=letter)
            except (NotReplayable, EventError) as exc:
                raise CommandError(f"#{id} not replayed: {exc}") from exc
            self.stdout.write(f"dead letter #{id} replayed")
            return
        if not group:
            raise CommandError(f"{action} needs a group key (see `manage.py deadletters`) or --id")
        try:
            fingerprint = console.resolve(group)
        except console.UnknownGroup as exc:
            raise CommandError(str(exc)) from exc
        if action == "retry":
            result = console.group_retry(fingerprint=fingerprint)
            self.stdout.write(f"group {fingerprint[:12]}: {result.replayed} replayed")
            for pk, reason in result.refused:
                self.stderr.write(f"#{pk} not replayed: {reason}")
            if result.refused:
                raise CommandError(f"{len(result.refused)} dead letter(s) of the group could not be replayed")
        else:
            count = console.group_archive(fingerprint=fingerprint)
            self.stdout.write(f"group {fingerprint[:12]}: {count} archived")

    def _list(self, status: str, *, as_json: bool) -> None:
        groups = console.groups(status)
        if as_json:
            rows = [
                {
                    "group": g.key,
                    "fingerprint": g.fingerprint,
                    "service": g.service,
                    "handler": g.handler,
                    "stage": g.stage,
                    "count": g.count,
                    "firstSeen": g.first_seen.isoformat(),
                    "lastSeen": g.last_seen.isoformat(),
                    "error": g.signature,
                    "example": g.example,
                    "eventTypes": g.event_types,
                }
                for g in groups
            ]
            self.stdout.write(json_dumps(rows))
            return
        if not groups:
            self.stdout.write(f"no {status} dead letters")
            return
        for g in groups:
            self.stdout.write(
                f"{g.key}  {g.count:>6}  {g.first_seen:%Y-%m-%d %H:%M:%S}  {g.last_seen:%Y-%m-%d %H:%M:%S}  "
                f"{g.service}  {g.handler or '(' + g.stage + ')'}  {g.signature}"
            )


def json_dumps(value: Any) -> str:
    return json.dumps(value, indent=2)
