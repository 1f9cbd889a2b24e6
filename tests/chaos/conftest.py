"""Fixtures of the chaos suite: a broker vhost per test, the process stack, the report at the end."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import harness, rabbit

REPORT_PATH = Path(os.environ.get("CHAOS_REPORT", harness.ROOT / "bench" / "results" / "chaos.json"))


def postgres_only() -> Any:
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (terminating backends, refusing connections): run with DATABASE_URL=postgres://...")


@pytest.fixture(scope="session")
def main_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rabbit.Node]:
    """The run's own RabbitMQ node: the suite's hundreds of queues and connections never load the shared broker."""
    if not rabbit.available():
        pytest.skip(rabbit.MISSING)
    node = rabbit.Node(tmp_path_factory.mktemp("rabbit-main"), f"chaos-main-{uuid.uuid4().hex[:6]}")
    node.start()
    yield node
    node.kill()


@pytest.fixture
def vhost(main_node: rabbit.Node) -> Iterator[str]:
    """A vhost of the run's node for this test alone: nothing left over from another test reaches it."""
    if main_node.handle is None or main_node.handle.poll() is not None:
        main_node.start()  # a test that killed it failed before starting it again
    name = f"chaos-{uuid.uuid4().hex[:10]}"
    main_node.add_vhost(name)
    yield name
    done = main_node.ctl("delete_vhost", name, check=False)
    if done.returncode != 0:
        print(f"could not delete vhost {name}: {done.stderr}")


@pytest.fixture
def stack_broker_url(main_node: rabbit.Node, vhost: str) -> str:
    """Where the stack's processes connect: this test's vhost on the run's node (a module may override it)."""
    return main_node.url(vhost)


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, transactional_db: None, live_server: Any, stack_broker_url: str
) -> Iterator[harness.Stack]:
    """Relay, workers and beat started by the test; stopped by PID afterwards, their logs kept in tmp_path."""
    stack = harness.Stack(logs=tmp_path, broker_url=stack_broker_url, env_extra={"ORDERS_BASE_URL": live_server.url})
    yield stack
    stack.stop_all()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        sys.stdout.write(stack.tails(6000))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not harness.REPORT:
        return
    rows = [figures.row() for figures in harness.REPORT]
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(json.dumps({"database": _vendor(), "faults": rows}, indent=2))
    terminalreporter.write_sep("=", "chaos ledger")
    terminalreporter.write_line(harness.table(rows))
    terminalreporter.write_line(f"written to {REPORT_PATH}")


def _vendor() -> str:
    from django.conf import settings

    return "sqlite" if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") else "postgresql"
