"""The relay: publishes the event log (the outbox) to RabbitMQ.

Guarantees:
- Every committed event is published at least once, in log order, as a persistent message on
  the topic exchange `events`, and marked published only after the broker confirmed it. A crash
  between confirm and mark republishes it once its lease runs out: consumers deduplicate.
- Rows are leased (`claimed_by`, `claimed_until`) in short transactions of their own, so no
  database lock is held while the relay talks to the broker.
- Confirms are pipelined: one batch is in flight while the next is leased and sent, and
  acknowledgements are collected as they come, not one round trip per message.
- Several relays may run against PostgreSQL: each leases rows with `FOR UPDATE SKIP LOCKED`, and
  a row whose subject has an earlier unpublished row held by another relay waits, so events of
  one subject still leave in log order.
- The log never stops behind one row: a row that cannot be made into a message (a timestamp AMQP
  cannot carry, say) or whose message would exceed `EVENTS_MAX_MESSAGE_BYTES` is set aside with
  `rejected_reason` (shown in the admin) and the rows behind it flow on.
- Only outages are retried: broker or database outages are waited out with backoff; nothing is
  marked unless confirmed, and a relay that loses the broker gives its leases back at once. A
  broker that stops answering without closing the connection (a frozen node, a stalled link) is
  an outage too: writes and handshakes time out, and the relay reconnects.

Hooks (no-ops by default): `on_confirmed(positions)` after the broker confirmed a batch and
before the rows are marked.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import amqp
from django.conf import settings
from django.db import Error as DatabaseError
from django.db import close_old_connections, transaction
from django.db.models import Min, Q, QuerySet
from kombu import Connection
from kombu.exceptions import OperationalError as BrokerUnreachable

from events import topology
from events.models import ENVELOPE_COLUMNS, StoredEvent, envelope_of

logger = logging.getLogger(__name__)


class ConfirmTimeout(Exception):
    """The broker did not confirm the messages in flight in time."""


def outage_errors(connection: Connection) -> tuple[type[BaseException], ...]:
    """Errors that mean the broker or the database is unavailable: wait and try again.

    kombu reports a broker it cannot connect to (refused, reset, timed out) as its own
    `OperationalError`, which is none of the transport's errors.
    """
    return (DatabaseError, ConfirmTimeout, OSError, BrokerUnreachable, *connection.connection_errors, *connection.channel_errors)


@dataclass(frozen=True)
class Outgoing:
    position: int
    routing_key: str
    body: bytes
    properties: dict[str, Any]


class ConfirmingPublisher:
    """Publishes on one channel in confirm mode, many messages in flight at once."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.outages = outage_errors(connection)
        self.channel = connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self._next_tag = 1
        self._pending: dict[int, int] = {}
        self._acked: list[int] = []
        self._nacked: list[int] = []

    def _settle(self, delivery_tag: int, multiple: bool, into: list[int]) -> None:
        if not multiple:
            position = self._pending.pop(delivery_tag, None)
            if position is not None:
                into.append(position)
            return
        while self._pending:
            tag = next(iter(self._pending))
            if tag > delivery_tag:
                break
            into.append(self._pending.pop(tag))

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._acked)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._nacked)

    def send(self, messages: Iterable[Outgoing]) -> dict[int, str]:
        """Publish without waiting for confirms; returns {position: reason} of messages that cannot be encoded.

        py-amqp encodes a message whole before it writes a byte, so a message it cannot encode
        leaves the connection as it was.
        """
        unsendable: dict[int, str] = {}
        for message in messages:
            try:
                self.channel.basic_publish(
                    amqp.Message(message.body, **message.properties),
                    exchange=topology.EVENTS,
                    routing_key=message.routing_key,
                )
            except self.outages:
                raise
            except Exception as exc:
                unsendable[message.position] = f"cannot be encoded as an AMQP message: {type(exc).__name__}: {exc}"
                continue
            self._pending[self._next_tag] = message.position
            self._next_tag += 1
        return unsendable

    def wait(self, max_in_flight: int, timeout: float) -> tuple[list[int], list[int]]:
        """Read confirms until at most `max_in_flight` remain; return (acked, nacked) positions since last time."""
        deadline = time.monotonic() + timeout
        while len(self._pending) > max_in_flight:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfirmTimeout(f"{len(self._pending)} messages unconfirmed after {timeout}s")
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        settled = self._acked, self._nacked
        self._acked, self._nacked = [], []
        return settled


class Relay:
    def __init__(
        self,
        *,
        broker_url: str | None = None,
        batch_size: int | None = None,
        poll_seconds: float | None = None,
        max_message_bytes: int | None = None,
        wake_address: str | None = None,
        confirm_timeout: float = 30.0,
        lease_seconds: float = 60.0,
    ) -> None:
        self.broker_url = broker_url or settings.CELERY_BROKER_URL
        self.batch_size = batch_size or settings.EVENTS_RELAY_BATCH_SIZE
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.EVENTS_RELAY_POLL_SECONDS
        self.max_message_bytes = max_message_bytes or settings.EVENTS_MAX_MESSAGE_BYTES
        self.wake_address = settings.EVENTS_RELAY_WAKE_ADDRESS if wake_address is None else wake_address
        self.confirm_timeout = confirm_timeout
        # Well beyond a batch's claim and confirm time; should a slow relay still lose a lease, the
        # event is published twice, which consumers absorb.
        self.lease = timedelta(seconds=max(lease_seconds, 0.0))
        self.relay_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stop_event = threading.Event()

    # -- hooks
    def on_confirmed(self, positions: list[int]) -> None:
        """Called after the broker confirmed `positions`, before they are marked published."""

    # -- batches
    def relay_batch(self, publisher: ConfirmingPublisher) -> int:
        """Claim one batch, publish it, wait for its confirms and mark it. Returns the rows claimed."""
        claimed, _ = self._claim_and_send(publisher)
        self._settle(publisher, 0)
        return claimed

    def pump(self, publisher: ConfirmingPublisher) -> int:
        """Relay until the log is drained, one batch in flight while the next is claimed and sent."""
        total = 0
        while not self.stop_event.is_set():
            claimed, sent = self._claim_and_send(publisher)
            total += claimed
            if claimed < self.batch_size:
                break
            self._settle(publisher, sent)  # everything before the batch just sent is confirmed and marked
        self._settle(publisher, 0)
        return total

    def _settle(self, publisher: ConfirmingPublisher, max_in_flight: int) -> None:
        acked, nacked = publisher.wait(max_in_flight, self.confirm_timeout)
        if nacked:
            logger.warning("broker refused %d events; they stay unpublished and are retried", len(nacked))
            self._release(nacked)
        if acked:
            self.on_confirmed(acked)
            StoredEvent.objects.filter(position__in=acked).update(published_at=datetime.now(UTC), claimed_until=None)

    def _claim_and_send(self, publisher: ConfirmingPublisher) -> tuple[int, int]:
        """Lease a batch and publish it without waiting; returns (rows claimed, messages sent)."""
        rows = self._claim()
        outgoing: list[Outgoing] = []
        set_aside: dict[int, str] = {}
        for row in rows:
            try:
                envelope = envelope_of(row)
                body = envelope.to_json()
                properties = envelope.amqp_properties()
            except Exception as exc:
                set_aside[row["position"]] = f"cannot be made into a message: {type(exc).__name__}: {exc}"
                continue
            if len(body) > self.max_message_bytes:
                set_aside[row["position"]] = (
                    f"message of {len(body)} bytes exceeds EVENTS_MAX_MESSAGE_BYTES={self.max_message_bytes}"
                )
                continue
            outgoing.append(Outgoing(row["position"], f"{row['topic']}.{row['event_type']}", body, properties))
        unsendable = publisher.send(outgoing)
        set_aside.update(unsendable)
        for position, reason in set_aside.items():
            logger.error("event #%s set aside, not published: %s", position, reason)
            StoredEvent.objects.filter(position=position).update(rejected_reason=reason, claimed_until=None)
        return len(rows), len(outgoing) - len(unsendable)

    def _claim(self) -> list[dict[str, Any]]:
        """Lease the next unpublished rows to this relay, in a short transaction of their own."""
        now = datetime.now(UTC)
        pending = StoredEvent.objects.filter(published_at__isnull=True, rejected_reason="")
        available = pending.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        with transaction.atomic():
            rows = list(
                available.select_for_update(skip_locked=True).order_by("position").values(*ENVELOPE_COLUMNS)[: self.batch_size]
            )
            rows = self._in_subject_order(rows, pending, now)
            if rows:
                StoredEvent.objects.filter(position__in=[row["position"] for row in rows]).update(
                    claimed_by=self.relay_id, claimed_until=now + self.lease
                )
        return rows

    def _in_subject_order(
        self, rows: list[dict[str, Any]], pending: QuerySet[StoredEvent], now: datetime
    ) -> list[dict[str, Any]]:
        """Drop rows whose subject has an earlier unpublished row that this relay is not sending."""
        subjects = {row["subject"] for row in rows if row["subject"]}
        if not subjects:
            return rows
        mine = [row["position"] for row in rows]
        # Earlier unpublished rows that are neither in this claim nor in flight on this relay.
        others = (
            pending.filter(position__lt=mine[-1])
            .exclude(position__in=mine)
            .exclude(claimed_by=self.relay_id, claimed_until__gte=now)
        )
        if not others.exists():  # the usual case: no other relay holds anything earlier
            return rows
        blocked = dict(others.filter(subject__in=subjects).values_list("subject").annotate(first=Min("position")))
        return [row for row in rows if row["subject"] not in blocked or row["position"] < blocked[row["subject"]]]

    def _release(self, positions: Iterable[int] | None = None) -> None:
        """Give leased, unpublished rows back (all of this relay's when `positions` is None)."""
        rows = StoredEvent.objects.filter(claimed_by=self.relay_id, published_at__isnull=True)
        if positions is not None:
            rows = rows.filter(position__in=list(positions))
        rows.update(claimed_by="", claimed_until=None)

    # -- the loop
    def run(self) -> None:
        """Relay until `stop()`; survives broker and database outages."""
        wake = self._bind_wake_socket()
        retryable = outage_errors(Connection(self.broker_url))
        backoff = 0.5
        try:
            while not self.stop_event.is_set():
                try:
                    with Connection(self.broker_url, transport_options=self._transport_options()) as connection:
                        connection.ensure_connection(max_retries=1)
                        topology.declare(connection)
                        publisher = ConfirmingPublisher(connection)
                        logger.info("relay connected to %s", connection.as_uri())
                        backoff = 0.5
                        while not self.stop_event.is_set():
                            self.pump(publisher)
                            self._wait(wake)
                except retryable as exc:
                    logger.warning("relay interrupted (%s: %s); retrying in %.1fs", type(exc).__name__, exc, backoff)
                    close_old_connections()
                    self._release_quietly()
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            self._release_quietly()
            if wake is not None:
                wake.close()
            logger.info("relay stopped")

    def stop(self) -> None:
        self.stop_event.set()

    def _release_quietly(self) -> None:
        try:
            self._release()
        except DatabaseError as exc:
            logger.warning("could not give back leased events (they are freed when the lease ends): %s", exc)

    def _transport_options(self) -> dict[str, Any]:
        return {
            # Names the connection in the RabbitMQ management UI.
            "client_properties": {"connection_name": f"relay@{socket.gethostname()}"},
            # A broker that stops reading (a frozen node, a stalled link) must not hold the relay for
            # ever: a write it does not take within the confirm timeout, or a handshake it does not
            # answer, is an outage (the relay reconnects, to the next address when several are given).
            "write_timeout": self.confirm_timeout,
            "read_timeout": min(self.confirm_timeout, 10.0),
        }

    def _bind_wake_socket(self) -> socket.socket | None:
        if not self.wake_address:
            return None
        host, _, port = self.wake_address.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind((host, int(port)))
        except (OSError, ValueError) as exc:
            logger.warning("cannot listen for nudges on %s (%s); polling every %ss", self.wake_address, exc, self.poll_seconds)
            sock.close()
            return None
        sock.setblocking(False)
        return sock

    def _wait(self, wake: socket.socket | None) -> None:
        if wake is None:
            self.stop_event.wait(self.poll_seconds)
            return
        readable, _, _ = select.select([wake], [], [], self.poll_seconds)
        if readable:
            try:
                while True:
                    wake.recv(64)
            except BlockingIOError:
                pass
