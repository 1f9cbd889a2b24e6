"""Schema contracts: each event version's JSON Schema, committed in events/schemas/, and the check against it.

A version, once published, is a contract: events of it sit in the log, in queues and in dead
letters, and handlers of other services read it. `breaking_changes()` compares the JSON Schema of
every registered version (`events.asyncapi.schema_of`) with its snapshot and reports, per version,
what would break a reader or an old event:
- a field removed or renamed;
- a field's type or constraints changed (nullable, format, enum, nested fields alike);
- a field that became required, or a new required field (old events lack it);
- a version removed from the registry.
A new optional field passes. A version not in the snapshot yet is reported as unrecorded.

`python manage.py event_schemas` checks; `--update` rewrites the snapshot, and refuses while a
change is breaking unless `--allow-breaking` says the break is intended (a version retired after
every consumer moved on). The test suite runs the check (tests/events/test_contracts.py).

Only the project's own event types are kept: those declared in the `tests` package are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from events import registry
from events.asyncapi import schema_of, versions_of
from events.registry import EventType

SNAPSHOT_DIR = Path(settings.BASE_DIR) / "events" / "schemas"
# Keys that describe a schema without constraining its data.
ANNOTATIONS = frozenset({"title", "description", "examples", "$comment"})
ADVICE = (
    "A published version's schema must not change incompatibly: add a new version with the change "
    "(event_type(..., versions={...})), a converter between it and the old one (@<Type>.upcaster / .downcaster), "
    "and run `python manage.py event_schemas --update` to record it."
)


@dataclass(frozen=True)
class Change:
    routing_key: str
    version: str
    problem: str

    def __str__(self) -> str:
        return f"{self.routing_key} {self.version}: {self.problem}"


def project_types() -> list[EventType]:
    return [t for t in registry.all_types() if not t.versions[t.latest].__module__.startswith("tests.")]


def current() -> dict[str, dict[str, Any]]:
    """{routing key: {version: JSON Schema}} of the project's registered event versions."""
    return {t.routing_key: {v: schema_of(t, v) for v in versions_of(t)} for t in project_types()}


def snapshot_path(routing_key: str, directory: Path | None = None) -> Path:
    return (directory or SNAPSHOT_DIR) / f"{routing_key}.json"


def load_snapshot(directory: Path | None = None) -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted((directory or SNAPSHOT_DIR).glob("*.json"))}


def write_snapshot(schemas: dict[str, dict[str, Any]], directory: Path | None = None) -> list[Path]:
    """Write one file per event type; remove the files of types no longer registered. Returns the files written."""
    directory = directory or SNAPSHOT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for routing_key, versions in schemas.items():
        path = snapshot_path(routing_key, directory)
        path.write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n")
        written.append(path)
    for path in directory.glob("*.json"):
        if path.stem not in schemas:
            path.unlink()
    return written


def breaking_changes(
    snapshot: dict[str, dict[str, Any]], schemas: dict[str, dict[str, Any]]
) -> tuple[list[Change], list[Change]]:
    """(breaking changes, unrecorded versions) of `schemas` against `snapshot`."""
    breaking: list[Change] = []
    unrecorded: list[Change] = []
    for routing_key, recorded_versions in snapshot.items():
        for version, old in recorded_versions.items():
            new = schemas.get(routing_key, {}).get(version)
            if new is None:
                breaking.append(
                    Change(routing_key, version, "the version is no longer registered (events of it can no longer be read)")
                )
                continue
            breaking.extend(Change(routing_key, version, problem) for problem in compare(old, new))
    for routing_key, versions in schemas.items():
        for version in versions:
            if version not in snapshot.get(routing_key, {}):
                unrecorded.append(Change(routing_key, version, "not in the snapshot yet"))
    return breaking, unrecorded


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in `new` breaks readers or old data of `old` (both JSON Schemas of an object)."""
    return _compare_objects(_inline(old, old.get("$defs", {})), _inline(new, new.get("$defs", {})), "")


def _compare_objects(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    problems = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, old_prop in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            problems.append(f"field {where!r} was removed or renamed")
            continue
        new_prop = new_props[name]
        if name in new_required and name not in old_required:
            problems.append(f"field {where!r} became required")
        problems.extend(_compare_values(old_prop, new_prop, where))
    for name in new_props:
        if name not in old_props and name in new_required:
            problems.append(f"new field {f'{path}{name}'!r} is required (events of the old schema lack it)")
    return problems


def _compare_values(old: dict[str, Any], new: dict[str, Any], where: str) -> list[str]:
    if _is_object(old) and _is_object(new):
        rest_old = {k: v for k, v in _shape(old).items() if k not in ("properties", "required")}
        rest_new = {k: v for k, v in _shape(new).items() if k not in ("properties", "required")}
        problems = _compare_objects(old, new, f"{where}.")
        if rest_old != rest_new:
            problems.append(f"field {where!r} changed its constraints")
        return problems
    if old.get("type") == "array" and new.get("type") == "array" and _is_object(old.get("items", {})):
        if _is_object(new.get("items", {})):
            rest_old = {k: v for k, v in _shape(old).items() if k != "items"}
            rest_new = {k: v for k, v in _shape(new).items() if k != "items"}
            problems = _compare_objects(old["items"], new["items"], f"{where}[].")
            if rest_old != rest_new:
                problems.append(f"field {where!r} changed its constraints")
            return problems
    if _shape(old) != _shape(new):
        return [f"field {where!r} changed type from {_describe(old)} to {_describe(new)}"]
    return []


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" and "properties" in schema


def _shape(schema: Any) -> Any:
    """`schema` without annotations, for comparison."""
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in ANNOTATIONS}
    if isinstance(schema, list):
        return [_shape(item) for item in schema]
    return schema


def _describe(schema: dict[str, Any]) -> str:
    return json.dumps(_shape(schema), sort_keys=True)[:200]


def _inline(schema: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    """`schema` with its `#/$defs/...` references replaced by the definitions (recursion cut at a depth)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 10:
            target = defs.get(ref.rsplit("/", 1)[-1], {})
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return _inline(merged, defs, depth + 1)
        return {k: _inline(v, defs, depth) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, defs, depth) for item in schema]
    return schema
