"""Fault 7: a flaky link between every client (relay, workers) and the broker: connections reset and stalled."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from events.models import StoredEvent
from tests.chaos import load, rabbit
from tests.chaos.harness import Stack, assert_clean, drain
from tests.chaos.proxy import FlakyProxy
from tests.support import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def proxy(main_node: rabbit.Node) -> Iterator[FlakyProxy]:
    with FlakyProxy(("127.0.0.1", main_node.amqp_port)) as proxy:
        yield proxy


@pytest.fixture
def stack_broker_url(main_node: rabbit.Node, vhost: str, proxy: FlakyProxy) -> str:
    return main_node.url(vhost).replace(f":{main_node.amqp_port}/", f":{proxy.port}/")


def test_7_a_flaky_link_that_resets_and_stalls_connections(stack: Stack, proxy: FlakyProxy) -> None:
    stack.relay()
    stack.worker("all", load.ALL)
    load.mixed()
    load.marks(1500, prefix="flaky")
    wait_for(lambda: StoredEvent.objects.filter(published_at__isnull=False).count() >= 200, timeout=120, message="load under way")
    fault = time.monotonic()
    resets = 0
    for _ in range(3):
        resets += proxy.reset()
        time.sleep(2)
        load.marks(100, prefix=f"between{resets}-")
    proxy.stall(True)
    time.sleep(12)  # three heartbeats of 4 s: the workers give their connections up; the relay's confirms time out later
    proxy.stall(False)
    resets += proxy.reset()
    figures = drain(stack, "7 flaky link: resets and a 12 s stall", since=fault, timeout=240)
    assert_clean(figures)
    assert resets >= 3, "no connection went through the proxy: nothing was tested"
