"""demo_checkout runs both checkouts against its own API server, relay and workers, and prints the table."""

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from tests.conftest import subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_checkout_prints_the_two_styles_side_by_side(purge: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in subprocess_env().items():
        monkeypatch.setenv(name, value)  # its relay and workers use this run's database and vhost
    out = StringIO()

    call_command("demo_checkout", orders=2, outage=0.5, stdout=out)

    rows = [
        line.split(" | ") for line in out.getvalue().splitlines() if line.startswith("| event") or line.startswith("| request")
    ]
    table: dict[tuple[str, str], Any] = {(r[0].strip("| "), r[1]): r for r in rows}
    assert len(table) == 6
    for scenario in ("all services up", "payments down", "inventory stopped"):
        placed, completed, failed = table[("event-driven", scenario)][2:5]
        assert (placed, completed, failed) == ("2", "2", "0"), table[("event-driven", scenario)]
    assert table[("request-driven", "all services up")][2:5] == ["2", "2", "0"]
    assert table[("request-driven", "inventory stopped")][2:5] == ["2", "2", "0"]
    down = table[("request-driven", "payments down")]
    assert down[2:5] == ["2", "0", "2"] and "503 payments is unreachable" in down[-1]
