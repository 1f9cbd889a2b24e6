import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from events import asyncapi, contracts


class Command(BaseCommand):
    help = (
        "Check every event version's JSON Schema against the snapshot in events/schemas/ "
        "(--update records it; --asyncapi FILE writes the AsyncAPI document)."
    )

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--update", action="store_true", help="rewrite the snapshot from the registered versions")
        parser.add_argument(
            "--allow-breaking", action="store_true", help="with --update: record even incompatible changes (a version retired)"
        )
        parser.add_argument("--asyncapi", metavar="FILE", help="also write the AsyncAPI 3.0 document to FILE")

    def handle(self, *args: Any, update: bool, allow_breaking: bool, asyncapi: str | None, **options: Any) -> None:
        schemas = contracts.current()
        breaking, unrecorded = contracts.breaking_changes(contracts.load_snapshot(), schemas)
        for change in breaking:
            self.stderr.write(f"incompatible: {change}")
        for change in unrecorded:
            self.stdout.write(f"unrecorded: {change}")
        if asyncapi:
            Path(asyncapi).write_text(json.dumps(asyncapi_document(), indent=2) + "\n")
            self.stdout.write(f"wrote {asyncapi}")
        if update:
            if breaking and not allow_breaking:
                raise CommandError(f"{len(breaking)} incompatible change(s), snapshot not written. {contracts.ADVICE}")
            written = contracts.write_snapshot(schemas)
            self.stdout.write(
                self.style.SUCCESS(f"recorded {sum(len(v) for v in schemas.values())} versions in {len(written)} files")
            )
            return
        if breaking:
            raise CommandError(f"{len(breaking)} incompatible change(s). {contracts.ADVICE}")
        if unrecorded:
            raise CommandError("versions missing from the snapshot: run `python manage.py event_schemas --update`")
        self.stdout.write(self.style.SUCCESS("every event version matches its snapshot"))


def asyncapi_document() -> dict[str, Any]:
    return asyncapi.document()
