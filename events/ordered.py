"""Ordered handlers: each subject's events one at a time, in the order they were committed; subjects in parallel.

A service with `@subscribe(..., ordered=True)` handlers has the queue `<service>.events.ordered`, a
single-active-consumer queue: one worker reads it at a time, the others stand by and take over
when it goes (Kafka's one consumer per partition). The consumer step of the active worker reads it
in order and hands each message to one of `EVENTS_ORDERED_LANES` lanes, chosen by a hash of the
event's subject. A lane is a thread of the worker's main process that runs its messages one after
another, a batch at a time in one transaction, each handler in a savepoint with its inbox row (on
PostgreSQL the batch's inbox rows are written first, in one statement per handler, and those of
the events not run after a failure removed again, as handler tasks do); the consumer step acks a
message once its lane has committed it.

Guarantees:
- Per subject, an ordered handler sees events in the order the relay published them, which is
  the order in which they were committed per subject: one lane holds a subject, runs one of its
  messages at a time, and a message is acked only after it was handled. A worker that dies gives
  its unacked messages back, in order, to the next active consumer; the inbox skips those that
  were handled already. One that stops hands over the same way, before any later message
  reaches the next consumer (the consumer step closes the ordered channel, never cancels it:
  see `events/consumer.py`).
- A failed event holds its lane back: it is tried again in place, after the same backoff as other
  handlers, up to the handler's `max_attempts`; then it is a dead letter and the lane goes on.
  Other subjects of the same lane wait meanwhile, other lanes do not. A lost database connection
  never counts as an attempt: the lane waits and runs the batch again. The dead letter comes with
  the handler's inbox row marked given up (`deadletters.record_handler_failure`), so the event
  coming back (a lost ack, a second publish) never runs after its subject's later events.
- A message that comes back after its worker died (`redelivered`) is run alone, by one lane at a
  time, with a start recorded beforehand: an event whose run was started
  `EVENTS_HANDLER_MAX_WORKER_LOSSES` times without finishing (its handler ends the process, say) is a
  dead letter saying so, and the rest flows. Messages that arrive meanwhile wait until the
  redelivered ones are done, so that none overtakes them.
- Exactly one effect per event and handler, as for every handler: the inbox row and the handler's
  work commit together.
- An ordered batch handler (`batch=True`) gets a lane's batch as one list, each subject's events
  in order; if it fails, the batch runs event by event as above.

The cost: an ordered handler runs in one process of one worker at a time (its lanes are threads;
the other workers stand by), and a slow or failing event delays the other subjects of its lane.
A dead letter replayed later runs through the handler task, out of order by nature.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
import zlib
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.db.models import F

from events import deadletters, handling
from events.envelope import Envelope
from events.handling import (
    BatchAborted,
    DatabaseUnavailable,
    backoff_seconds,
    claim_all,
    connection_lost,
    max_attempts,
    raise_unless_events_can_run_alone,
    refresh_connections,
    run_many,
    run_once,
    unclaim,
)
from events.models import InboxEntry
from events.observability import logs, runs
from events.subscriptions import Subscription

logger = logging.getLogger(__name__)


def lane_of(envelope: Envelope, lanes: int) -> int:
    """The lane of an event: a stable hash of its subject (of its id when it has none)."""
    key = envelope.subject or envelope.event_id
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % lanes


@dataclass
class Work:
    """One message of `<service>.events.ordered` and what the service's ordered handlers make of it."""

    service: str
    message: Any
    envelope: Envelope
    handlers: list[tuple[Subscription, Envelope]]
    epoch: int
    redelivered: bool = False
    given_up: set[str] = field(default_factory=set)  # handlers whose dead letter for this event is stored
    attempts: dict[str, int] = field(default_factory=dict)


@dataclass
class Failure:
    index: int
    subscription: Subscription
    reason: str
    traceback: str


def handle_in_order(batch: list[Work], *, recorded_start: bool = False) -> tuple[int, Failure | None]:
    """Run `batch` in one transaction, stopping at the first failure. Returns how many messages are done
    (committed), and the failure that stopped the batch, if any. With `recorded_start`, the record of
    the (one) message's start goes in the same transaction as its handling. Once committed, what the
    batch did is logged as handler tasks report it: `{'handled': n, 'duplicates': m}`."""
    counts: Counter[str] = Counter()
    done, failure = len(batch), None
    try:
        with runs.batch(), transaction.atomic():
            if recorded_start:
                _finished(batch[0])
            if _handled_in_batches(batch, counts):
                batch = []
            claims = _claim_lane(batch)
            for index, work in enumerate(batch):
                failure = _handle(index, work, counts, claims)
                if failure is not None:
                    done = index  # commit what came before; this event is tried again from here
                    unclaim([row for rows in claims.values() for row in rows.values()])  # of the events not run
                    break
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        if connection_lost(exc):
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
        raise
    if counts:
        logger.info("ordered events committed: %s", dict(counts))
    return done, failure


def _handled_in_batches(batch: list[Work], counts: Counter[str]) -> bool:
    """Where batch handlers (`batch=True`) take part, first try the whole batch at once, in a savepoint: each batch
    handler gets its events as one list, in lane order (so each subject's in order), the other handlers run event
    by event. False if that is not for this batch, or if something failed (then nothing of it was written, and the
    caller runs the batch event by event)."""
    if len(batch) < 2 or any(work.given_up or work.attempts for work in batch):
        return False
    if not any(subscription.batch for work in batch for subscription, _ in work.handlers):
        return False
    lists: dict[str, tuple[Subscription, list[tuple[Envelope, int]]]] = {}
    singles: list[tuple[Subscription, Envelope]] = []
    for work in batch:
        for subscription, envelope in work.handlers:
            if subscription.batch:
                lists.setdefault(subscription.name, (subscription, []))[1].append((envelope, 1))
            else:
                singles.append((subscription, envelope))
    found: Counter[str] = Counter()
    # One batch handler alone needs no savepoint of its own here: run_many's undoes all it did if it fails.
    alone = len(lists) == 1 and not singles
    try:
        with transaction.atomic() if not alone else nullcontext():
            for subscription, envelopes in lists.values():
                handled, duplicates = run_many(subscription, envelopes)
                found.update(handled=handled, duplicates=duplicates)
            for subscription, envelope in singles:
                found["handled" if run_once(subscription, envelope) else "duplicates"] += 1
    except Exception as exc:
        raise_unless_events_can_run_alone(exc)
        logger.info("ordered lane: a batch of %d failed as a whole (%r); its events run one at a time", len(batch), exc)
        return False
    counts.update(found)
    return True


def _claim_lane(batch: list[Work]) -> dict[str, dict[tuple[str, str], InboxEntry]]:
    """On PostgreSQL, per handler, the inbox rows of the batch's events it has not handled yet, written in one
    statement (`handling.claim_all`), in lane order; none elsewhere (each event claims its own row)."""
    wanted: dict[str, tuple[Subscription, list[tuple[Envelope, int]]]] = {}
    for work in batch:
        for subscription, envelope in work.handlers:
            if subscription.name not in work.given_up:
                attempt = work.attempts.get(subscription.name, 0) + 1
                wanted.setdefault(subscription.name, (subscription, []))[1].append((envelope, attempt))
    claims = {}
    for name, (subscription, events) in wanted.items():
        claimed = claim_all(subscription, events)
        if claimed is not None:
            claims[name] = claimed
    return claims


def _handle(
    index: int, work: Work, counts: Counter[str], claims: dict[str, dict[tuple[str, str], InboxEntry]] | None = None
) -> Failure | None:
    for subscription, envelope in work.handlers:
        if subscription.name in work.given_up:
            continue
        claimed = None
        if claims and (rows := claims.get(subscription.name)) is not None:
            claimed = rows.pop((envelope.source, envelope.event_id), None)
            if claimed is None:
                counts["duplicates"] += 1  # handled before, or earlier in this batch
                continue
        failure = None
        try:
            handled = run_once(subscription, envelope, work.attempts.get(subscription.name, 0) + 1, claimed)
        except Exception as exc:
            if connection_lost(exc):
                raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
            if claimed is not None and not transaction.get_rollback():
                unclaim([claimed])
            failure = Failure(index, subscription, f"{type(exc).__name__}: {exc}", traceback.format_exc())
        if transaction.get_rollback():
            # Its savepoint could not be rolled back: nothing of the batch can commit (the lane runs each again).
            raise BatchAborted("the transaction was marked for rollback (a savepoint could not be rolled back)")
        if failure is not None:
            return failure
        counts["handled" if handled else "duplicates"] += 1
    return None


def _record_start(work: Work) -> int:
    """Note that a redelivered event's run starts; returns how many runs of it have started so far."""
    from events.models import UnfinishedRun

    run, created = UnfinishedRun.objects.get_or_create(
        queue=f"{work.service}.events.ordered", source=work.envelope.source, event_id=work.envelope.event_id
    )
    if not created:
        UnfinishedRun.objects.filter(pk=run.pk).update(starts=F("starts") + 1)
        run.refresh_from_db()
    return run.starts


def _finished(work: Work) -> None:
    from events.models import UnfinishedRun

    UnfinishedRun.objects.filter(
        queue=f"{work.service}.events.ordered", source=work.envelope.source, event_id=work.envelope.event_id
    ).delete()


class Lanes:
    """The lanes of one worker: threads that run ordered work and report what is done to the consumer step."""

    def __init__(self, count: int, batch_size: int) -> None:
        self.count = max(1, count)
        self.batch_size = max(1, batch_size)
        self.epoch = 0
        self.done: queue.SimpleQueue[Work] = queue.SimpleQueue()
        self._queues: list[queue.SimpleQueue[Work]] = [queue.SimpleQueue() for _ in range(self.count)]
        self._recovery: queue.SimpleQueue[Work] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pending = 0
        self._lock = threading.Lock()

    # -- the consumer step's side (one thread)
    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        targets = [(f"ordered-lane-{n}", self._queues[n], False) for n in range(self.count)]
        targets.append(("ordered-recovery", self._recovery, True))
        for name, source, alone in targets:
            thread = threading.Thread(target=self._run, args=(source, alone), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, work: Work) -> None:
        if self.halted:
            return  # leaving: its message goes back to the queue
        with self._lock:
            self._pending += 1
        if work.redelivered:
            self._recovery.put(work)
        else:
            self._queues[lane_of(work.envelope, self.count)].put(work)

    def completed(self) -> list[Work]:
        """Work the lanes finished since the last call (of the current connection only)."""
        finished = []
        while True:
            try:
                work = self.done.get_nowait()
            except queue.Empty:
                return finished
            with self._lock:
                self._pending -= 1
            if work.epoch == self.epoch:
                finished.append(work)

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def reset(self) -> None:
        """The connection was lost: its unacked messages come again, so forget what was waiting."""
        self.epoch += 1

    def halt(self) -> None:
        """The lanes finish the batches they are running and take no more."""
        self._stop.set()

    @property
    def halted(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float = 10.0) -> None:
        self.halt()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads = []

    # -- a lane (its own thread)
    def _run(self, source: queue.SimpleQueue[Work], alone: bool) -> None:
        try:
            while not self._stop.is_set():
                try:
                    first = source.get(timeout=0.2)
                except queue.Empty:
                    continue
                batch = [first]
                while not alone and len(batch) < self.batch_size:
                    try:
                        batch.append(source.get_nowait())
                    except queue.Empty:
                        break
                current = [work for work in batch if work.epoch == self.epoch]
                for work in batch:
                    if work.epoch != self.epoch:
                        self.done.put(work)  # stale: its message comes again; let the consumer forget it
                if current:
                    self._work(current, alone)
        finally:
            connections.close_all()

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _work(self, batch: list[Work], alone: bool) -> None:
        refresh_connections()
        if alone:
            started = self._started(batch[0])
            if started is None:
                return  # stopping: not run, not acked; its message goes back to the queue
            if not started:
                self.done.put(batch[0])  # dead-lettered, or stale (the consumer forgets it)
                return
        index, outages = 0, 0
        while index < len(batch) and not self._stop.is_set():
            if batch[index].epoch != self.epoch:
                for work in batch[index:]:
                    self.done.put(work)
                return
            try:
                done, failure = handle_in_order(batch[index:], recorded_start=alone)
            except DatabaseUnavailable as exc:
                outages += 1
                logger.warning("ordered lane: database unavailable (%s); running the batch again", exc)
                close_old_connections()
                self._wait(backoff_seconds(min(outages, 4)))
                continue
            except Exception as exc:
                # Nothing committed (found at commit, say): each message again on its own.
                if len(batch) - index > 1:
                    logger.warning("ordered lane: batch not committed (%r); running its events one by one", exc)
                    for work in batch[index:]:
                        self._work([work], alone)
                    return
                failure = Failure(0, batch[index].handlers[0][0], f"{type(exc).__name__}: {exc}", traceback.format_exc())
                done = 0
            for work in batch[index : index + done]:
                self._finish(work, alone)
            index += done
            if failure is not None:
                self._failed(batch[index], failure)

    def _started(self, work: Work) -> bool | None:
        """For a redelivered message: record the start; False if it was dead-lettered instead, or came on a connection
        that is gone (its message comes again); None if the lanes are stopping meanwhile."""
        limit = settings.EVENTS_HANDLER_MAX_WORKER_LOSSES
        while not self._stop.is_set():
            if work.epoch != self.epoch:
                return False
            try:
                starts = _record_start(work)
                if starts <= limit:
                    return True
                reason = (
                    f"its run started {starts - 1} times without finishing: the worker handling it died each time "
                    "(a crash, os._exit, the OOM killer), or the broker took it back"
                )
                for subscription, envelope in work.handlers:
                    logger.error("%s: dead-lettering %s: %s", subscription.name, envelope.event_id, reason)
                    deadletters.record_handler_failure(
                        service=work.service, handler=subscription.name, envelope=envelope, reason=reason, tb="", attempts=0
                    )
                _finished(work)
                return False
            except Exception as exc:
                logger.warning("ordered lane: could not record the start of %s (%s); trying again", work.envelope.event_id, exc)
                close_old_connections()
                self._wait(1.0)
        return None

    def _finish(self, work: Work, alone: bool) -> None:
        self.done.put(work)

    def _failed(self, work: Work, failure: Failure) -> None:
        envelope = next(env for sub, env in work.handlers if sub.name == failure.subscription.name)
        token = logs.bind_event(envelope, service=work.service, handler=failure.subscription.name)
        try:
            self._retry_or_give_up(work, failure)
        finally:
            logs.reset(token)

    def _retry_or_give_up(self, work: Work, failure: Failure) -> None:
        subscription = failure.subscription
        attempt = work.attempts[subscription.name] = work.attempts.get(subscription.name, 0) + 1
        envelope = next(env for sub, env in work.handlers if sub.name == subscription.name)
        attempted = handling.Failure(envelope, attempt, failure.reason, failure.traceback)
        if attempt < max_attempts(subscription):
            runs.failed(subscription.name, work.service, attempted, "retried")
            delay = backoff_seconds(attempt)
            logger.warning(
                "%s failed on %s (attempt %d), trying again in %.1fs; its lane waits: %s",
                subscription.name,
                envelope.event_id,
                attempt,
                delay,
                failure.reason,
            )
            self._wait(delay)
            return
        logger.error("%s gave up on %s after %d attempts: %s", subscription.name, envelope.event_id, attempt, failure.reason)
        while not self._stop.is_set():
            try:
                deadletters.record_handler_failure(
                    service=work.service,
                    handler=subscription.name,
                    envelope=envelope,
                    reason=failure.reason,
                    tb=failure.traceback,
                    attempts=attempt,
                )
            except Exception as exc:
                logger.warning("could not store the dead letter of %s (%s); trying again", envelope.event_id, exc)
                close_old_connections()
                self._wait(1.0)
                continue
            runs.failed(subscription.name, work.service, attempted, "dead")
            work.given_up.add(subscription.name)
            return
