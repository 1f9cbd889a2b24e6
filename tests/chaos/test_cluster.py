"""Fault 19: a 3-node RabbitMQ cluster on loopback; one node stopped (SIGSTOP), then killed, then restarted under load.

The nodes are started by this module with their own names, ports, cookie and directories; every
queue of the project is a quorum queue replicated on the three. The stack's processes get all
three addresses (`amqp://...node1;amqp://...node2;amqp://...node3`) and fail over among them.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from events.models import StoredEvent
from tests.chaos import load, rabbit
from tests.chaos.harness import Stack, assert_clean, drain
from tests.support import wait_for

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not rabbit.available(), reason=rabbit.MISSING),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[rabbit.Node]]:
    base = tmp_path_factory.mktemp("cluster")
    suffix = uuid.uuid4().hex[:6]
    nodes = [rabbit.Node(base, f"chaos{i}-{suffix}") for i in (1, 2, 3)]
    try:
        for node in nodes:
            node.start(wait=False)
        for node in nodes:
            node.wait_up()
        for node in nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", nodes[0].nodename)
            node.ctl("start_app")
            node.ctl("await_startup")
        running = nodes[0].ctl("cluster_status", "--formatter", "json").stdout
        assert all(node.nodename in running for node in nodes), running
        yield nodes
    finally:
        for node in nodes:
            node.kill()


@pytest.fixture
def stack_broker_url(cluster: list[rabbit.Node]) -> str:
    vhost = f"chaos-{uuid.uuid4().hex[:8]}"
    cluster[0].add_vhost(vhost)
    return ";".join(node.url(vhost) for node in cluster)


def published() -> int:
    return StoredEvent.objects.filter(published_at__isnull=False).count()


@pytest.mark.timeout(900)
def test_19_a_cluster_node_stopped_then_killed_then_restarted_during_load(stack: Stack, cluster: list[rabbit.Node]) -> None:
    victim = cluster[0]  # every client's first address, and where the queues were declared (their first leaders)
    stack.relay()
    stack.worker("all", load.ALL)
    load.mixed()
    load.marks(1000, prefix="before")
    wait_for(lambda: published() >= 300, timeout=120, message="load under way")
    fault = time.monotonic()

    victim.signal(signal.SIGSTOP)
    load.marks(1000, prefix="stopped")
    mark = published()
    wait_for(lambda: published() >= mark + 500, timeout=120, message="confirms from the other nodes while one is stopped")

    victim.kill()
    load.marks(1000, prefix="killed")
    mark = published()
    wait_for(lambda: published() >= mark + 500, timeout=120, message="confirms while a node is dead")

    victim.start()
    load.marks(500, prefix="restarted")
    figures = drain(stack, "19 3-node cluster: a node SIGSTOP, SIGKILL, restart", since=fault, timeout=300)
    assert_clean(figures)
    members = victim.ctl("eval", "rabbit_nodes:all_running().").stdout
    assert all(node.nodename in members for node in cluster), members
