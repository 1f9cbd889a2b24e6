"""Schema contracts: every registered event version matches its committed snapshot (events/schemas/), and the
comparison tells incompatible changes from additive ones."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pydantic
import pytest
from django.core.management import CommandError, call_command

from events import contracts
from events.registry import EventSchema


def test_every_event_version_matches_its_committed_snapshot() -> None:
    breaking, unrecorded = contracts.breaking_changes(contracts.load_snapshot(), contracts.current())
    assert not breaking, "\n".join(["incompatible schema changes:", *map(str, breaking), contracts.ADVICE])
    assert not unrecorded, "\n".join(
        ["event versions missing from events/schemas/:", *map(str, unrecorded), "run `python manage.py event_schemas --update`"]
    )


def test_the_snapshot_covers_the_projects_types_only() -> None:
    recorded = contracts.load_snapshot()
    assert "orders.OrderPlaced" in recorded and set(recorded["orders.OrderPlaced"]) == {"1.0", "2.1", "2.2"}
    assert not [key for key in recorded if key.startswith("tests.")]


# -- the comparison


class Address(EventSchema):
    city: str
    pincode: str


class Line(EventSchema):
    sku: str
    quantity: int


class Before(EventSchema):
    """An order."""

    orderId: str
    total: Decimal
    note: str | None = None
    address: Address
    lines: list[Line]


def changes(after: type[pydantic.BaseModel]) -> list[str]:
    return contracts.compare(Before.model_json_schema(), after.model_json_schema())


def test_the_same_schema_and_additive_optional_changes_pass() -> None:
    class Same(EventSchema):
        """Reworded, and a field described."""

        orderId: str = pydantic.Field(description="the order")
        total: Decimal
        note: str | None = None
        address: Address
        lines: list[Line]
        coupon: str | None = None  # new and optional

    assert changes(Before) == []
    assert changes(Same) == []


def test_a_removed_or_renamed_field_breaks() -> None:
    class Renamed(EventSchema):
        order_id: str
        total: Decimal
        note: str | None = None
        address: Address
        lines: list[Line]

    assert changes(Renamed) == [
        "field 'orderId' was removed or renamed",
        "new field 'order_id' is required (events of the old schema lack it)",
    ]


def test_a_type_change_breaks() -> None:
    class Retyped(EventSchema):
        orderId: int
        total: Decimal
        note: str | None = None
        address: Address
        lines: list[Line]

    (problem,) = changes(Retyped)
    assert problem.startswith("field 'orderId' changed type from") and '"integer"' in problem


def test_a_new_required_field_or_an_optional_one_made_required_breaks() -> None:
    class Stricter(EventSchema):
        orderId: str
        total: Decimal
        note: str
        address: Address
        lines: list[Line]
        currency: str

    problems = changes(Stricter)
    assert "field 'note' became required" in problems
    assert "new field 'currency' is required (events of the old schema lack it)" in problems


def test_changes_inside_nested_objects_and_lists_break() -> None:
    class OtherAddress(EventSchema):
        city: str

    class OtherLine(EventSchema):
        sku: str
        quantity: str

    class Nested(EventSchema):
        orderId: str
        total: Decimal
        note: str | None = None
        address: OtherAddress
        lines: list[OtherLine]

    problems = changes(Nested)
    assert "field 'address.pincode' was removed or renamed" in problems
    assert any(p.startswith("field 'lines[].quantity' changed type") for p in problems), problems


def test_a_removed_version_breaks_and_an_unrecorded_one_is_reported() -> None:
    snapshot = {"shop.Thing": {"1.0": Before.model_json_schema()}}
    breaking, unrecorded = contracts.breaking_changes(snapshot, {"shop.Thing": {"2.0": Before.model_json_schema()}})
    assert [str(c) for c in breaking] == [
        "shop.Thing 1.0: the version is no longer registered (events of it can no longer be read)"
    ]
    assert [str(c) for c in unrecorded] == ["shop.Thing 2.0: not in the snapshot yet"]


# -- the command


@pytest.fixture
def snapshot_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(contracts, "SNAPSHOT_DIR", tmp_path)
    contracts.write_snapshot(contracts.current())
    return tmp_path


def test_the_command_checks_refuses_to_record_a_break_and_records_additive_changes(snapshot_dir: Path, capsys) -> None:  # noqa: ANN001
    call_command("event_schemas")
    assert "every event version matches its snapshot" in capsys.readouterr().out

    # The snapshot knows a field the code no longer has: as if `legacyId` had been removed from UserRegistered 1.0.
    path = snapshot_dir / "users.UserRegistered.json"
    recorded = json.loads(path.read_text())
    recorded["1.0"]["properties"]["legacyId"] = {"type": "string"}
    path.write_text(json.dumps(recorded))
    with pytest.raises(CommandError, match="add a new version"):
        call_command("event_schemas")
    assert "users.UserRegistered 1.0: field 'legacyId' was removed or renamed" in capsys.readouterr().err
    with pytest.raises(CommandError, match="snapshot not written"):
        call_command("event_schemas", "--update")
    assert "legacyId" in path.read_text()

    del recorded["1.0"]["properties"]["legacyId"]
    path.write_text(json.dumps(recorded))

    # An additive change passes, and --update records it: the snapshot of OrderPlaced 2.1 lacks the optional `userId`.
    path = snapshot_dir / "orders.OrderPlaced.json"
    recorded = json.loads(path.read_text())
    assert "userId" not in recorded["2.1"]["required"]
    del recorded["2.1"]["properties"]["userId"]
    path.write_text(json.dumps(recorded))
    call_command("event_schemas")
    call_command("event_schemas", "--update")
    assert json.loads(path.read_text()) == contracts.current()["orders.OrderPlaced"]


def test_the_command_records_a_deliberate_break_when_told(snapshot_dir: Path) -> None:
    (snapshot_dir / "shop.Retired.json").write_text(json.dumps({"1.0": Before.model_json_schema()}))
    with pytest.raises(CommandError):
        call_command("event_schemas", "--update")
    call_command("event_schemas", "--update", "--allow-breaking")
    assert not (snapshot_dir / "shop.Retired.json").exists()


def test_the_command_writes_the_asyncapi_document(snapshot_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.json"
    call_command("event_schemas", "--asyncapi", str(target))
    assert json.loads(target.read_text())["asyncapi"] == "3.0.0"
