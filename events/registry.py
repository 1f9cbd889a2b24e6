"""Event types, their versions and the conversions between versions.

An event type is declared once, next to the service that owns it::

    OrderPlaced = event_type("orders", "OrderPlaced", versions={"1.0": OrderPlacedV1, "2.1": OrderPlacedV2})

    @OrderPlaced.downcaster("2.1", "1.0")
    def order_placed_2_1_to_1_0(data: dict) -> dict: ...

Each version's schema is a pydantic model. Converters are small named functions from one
version's data (a JSON dict) to an adjacent version's; `EventType.convert` chains them along the
shortest path and validates the result against the target schema. Whatever cannot be converted
raises `ConversionError` with the reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from events.errors import ConversionError, InvalidEventData, UnknownEventType, UnknownEventVersion

Converter = Callable[[dict[str, Any]], dict[str, Any]]


class EventSchema(pydantic.BaseModel):
    """Base of every event payload schema: immutable, tolerant of fields it does not know."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(eq=False)
class EventType:
    topic: str
    name: str
    versions: Mapping[str, type[pydantic.BaseModel]]
    aliases: tuple[str, ...] = ()
    converters: dict[tuple[str, str], Converter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.versions:
            raise ValueError(f"{self.name} declares no version")
        for version in self.versions:
            version_key(version)  # fails loudly on a version that is not dotted numbers

    def __repr__(self) -> str:
        return f"<EventType {self.routing_key} {sorted(self.versions, key=version_key)}>"

    @property
    def routing_key(self) -> str:
        return f"{self.topic}.{self.name}"

    @property
    def routing_keys(self) -> list[str]:
        """The routing key, and those of names kept after a rename."""
        return [f"{self.topic}.{name}" for name in (self.name, *self.aliases)]

    @property
    def latest(self) -> str:
        return max(self.versions, key=version_key)

    def schema(self, version: str) -> type[pydantic.BaseModel]:
        try:
            return self.versions[version]
        except KeyError:
            known = ", ".join(sorted(self.versions, key=version_key))
            raise UnknownEventVersion(f"{self.name} has no version {version!r} (known: {known})") from None

    def validate(self, data: Mapping[str, Any] | pydantic.BaseModel, version: str) -> pydantic.BaseModel:
        schema = self.schema(version)
        if isinstance(data, schema):
            return data
        if isinstance(data, pydantic.BaseModel):
            data = data.model_dump(mode="json")
        try:
            return schema.model_validate(data)
        except pydantic.ValidationError as exc:
            raise InvalidEventData(f"data does not match {self.name} {version}: {_short(exc)}") from None

    def upcaster(self, from_version: str, to_version: str) -> Callable[[Converter], Converter]:
        """Register a function converting an older version's data to a newer one's."""
        if version_key(from_version) >= version_key(to_version):
            raise ValueError("an upcaster goes from an older version to a newer one")
        return self._register(from_version, to_version)

    def downcaster(self, from_version: str, to_version: str) -> Callable[[Converter], Converter]:
        """Register an exact view of a newer version as an older, thinner one."""
        if version_key(from_version) <= version_key(to_version):
            raise ValueError("a downcaster goes from a newer version to an older one")
        return self._register(from_version, to_version)

    def _register(self, from_version: str, to_version: str) -> Callable[[Converter], Converter]:
        self.schema(from_version)
        self.schema(to_version)

        def decorator(func: Converter) -> Converter:
            self.converters[(from_version, to_version)] = func
            return func

        return decorator

    def convert(self, data: Mapping[str, Any] | pydantic.BaseModel, from_version: str, to_version: str) -> dict[str, Any]:
        """Validate `data` as `from_version` (unless it is that version's model already) and return it as `to_version`'s
        JSON data."""
        current = self.validate(data, from_version).model_dump(mode="json")
        self.schema(to_version)
        if from_version == to_version:
            return current
        path = self._path(from_version, to_version)
        if path is None:
            raise ConversionError(f"no conversion from {self.name} {from_version} to {to_version}")
        for step in zip(path, path[1:], strict=False):
            try:
                current = self.converters[step](current)
            except Exception as exc:
                raise ConversionError(
                    f"converting {self.name} {step[0]} to {step[1]} failed: {type(exc).__name__}: {exc}"
                ) from None
        try:
            return self.validate(current, to_version).model_dump(mode="json")
        except InvalidEventData as exc:
            raise ConversionError(f"converted data is not a valid {self.name} {to_version}: {exc}") from None

    def _path(self, start: str, goal: str) -> list[str] | None:
        previous: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if node == goal:
                path = [node]
                while (parent := previous[path[-1]]) is not None:
                    path.append(parent)
                return path[::-1]
            for a, b in self.converters:
                if a == node and b not in previous:
                    previous[b] = node
                    queue.append(b)
        return None


def _short(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())


_types: dict[str, EventType] = {}


def event_type(
    topic: str,
    name: str,
    *,
    versions: Mapping[str, type[pydantic.BaseModel]],
    aliases: tuple[str, ...] = (),
) -> EventType:
    """Declare an event type. Names (and aliases kept after a rename) are unique project-wide."""
    declared = EventType(topic=topic, name=name, versions=dict(versions), aliases=aliases)
    for key in (name, *aliases):
        existing = _types.get(key)
        if existing is not None and existing.routing_key != declared.routing_key:
            raise ValueError(f"event type name {key!r} is already declared by {existing.routing_key}")
        _types[key] = declared
    return declared


def get(name: str) -> EventType:
    try:
        return _types[name]
    except KeyError:
        raise UnknownEventType(f"unknown event type {name!r}") from None


def all_types() -> list[EventType]:
    return sorted({id(t): t for t in _types.values()}.values(), key=lambda t: t.routing_key)
