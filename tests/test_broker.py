"""The tests' broker helpers, with every way of administering the broker that works here."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from tests import broker
from tests.support import wait_for

ADMINS = broker.working_admins()


def named_connection(broker_url: str, name: str) -> Connection:
    connection = Connection(broker_url, transport_options={"client_properties": {"connection_name": name}})
    connection.ensure_connection(max_retries=3)
    return connection


def test_the_run_has_a_way_to_administer_the_broker() -> None:
    assert ADMINS and broker.admin().name in [a.name for a in ADMINS]


@pytest.mark.parametrize("admin", ADMINS, ids=lambda a: a.name)
def test_close_connections_closes_the_named_connections_only(admin: broker.Admin, broker_url: str) -> None:
    vhost = broker.vhost_of(broker_url)
    victim = named_connection(broker_url, f"victim@{uuid.uuid4().hex[:6]}")
    bystander = named_connection(broker_url, "bystander@test")
    try:
        # The management API lists a new connection after its statistics interval.
        assert wait_for(lambda: broker.close_connections(vhost, "victim@", using=admin), timeout=15) == 1

        with pytest.raises(victim.connection_errors):
            victim.connection.drain_events(timeout=5)
        assert bystander.default_channel.queue_declare("", exclusive=True).queue
    finally:
        victim.release()
        bystander.release()


@pytest.mark.parametrize("admin", ADMINS, ids=lambda a: a.name)
def test_a_vhost_is_usable_once_added_and_gone_once_deleted(admin: broker.Admin) -> None:
    vhost = f"test-helper-{uuid.uuid4().hex[:8]}"
    admin.add_vhost(vhost)
    try:
        with Connection(broker.url(vhost)) as conn:
            conn.ensure_connection(max_retries=1)
            assert conn.default_channel.queue_declare("", exclusive=True).queue
    finally:
        admin.delete_vhost(vhost)

    with pytest.raises(Exception, match="(?i)access|refused|vhost|not.*allowed"), Connection(broker.url(vhost)) as conn:
        conn.ensure_connection(max_retries=1)


def test_a_run_that_cannot_administer_the_broker_stops_at_once_saying_how_to_fix_it() -> None:
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "TEST_RABBITMQ_MANAGEMENT": "http://127.0.0.1:9",  # nothing listens there
        "PATH": str(Path(sys.executable).parent),  # no rabbitmqctl
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/test_broker.py"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 3, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "rabbitmq-plugins enable rabbitmq_management" in output
    assert "rabbitmqctl` is not on PATH" in output
    assert " passed" not in output and " failed" not in output


@pytest.mark.parametrize("admin", ADMINS, ids=lambda a: a.name)
def test_the_vhost_of_a_run_killed_before_its_cleanup_is_removed_by_the_next_run(admin: broker.Admin) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    abandoned, ours = f"test-p{gone.stdout.strip()}-{uuid.uuid4().hex[:8]}", f"test-p{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for vhost in (abandoned, ours):
        admin.add_vhost(vhost)
    try:
        assert abandoned in broker.remove_abandoned_vhosts()
        assert abandoned not in admin.vhosts()
        assert ours in admin.vhosts()  # its process still runs
    finally:
        for vhost in (abandoned, ours):
            if vhost in admin.vhosts():
                admin.delete_vhost(vhost)
