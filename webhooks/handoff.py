"""From an acknowledged delivery to the queue: group commit of inbox rows, then a batched hand-off to Celery.

Two per-process pieces behind ``webhooks.services.webhook_event_receive``
(docs/checkout-stripe-runbook.md, "Webhook acknowledgement"):

* ``inbox_insert`` writes inbox rows with one ``INSERT ... ON CONFLICT (stripe_event_id) DO
  NOTHING RETURNING`` in autocommit. Concurrent callers of one process share that statement
  (``GroupCommit``, leader/follower): the first caller becomes the leader and writes every row
  queued by then in one statement, hence one commit and one WAL flush; callers arriving
  meanwhile queue for the next statement, whose leader is the first of them. Nobody waits on a
  timer: a batch is whatever arrived during the previous commit, so one caller alone pays one
  commit, as before. Each caller returns only after the statement holding its row committed,
  so a 200 still means "durably stored". Inside an ``atomic`` block (a test, a management
  command) the row is written on the caller's own connection, in its transaction.
* ``publisher.publish`` queues the processing of newly stored events. A daemon thread of the
  process sends them to the broker in batches (one pooled producer), off the request thread.
  If the process dies between the commit and the send, or the broker is down, the row stays
  ``received`` and ``webhook_events_sweep`` queues it later: the thread is an accelerator, the
  sweep is the guarantee. With ``CELERY_TASK_ALWAYS_EAGER`` (development without a broker,
  tests) the task runs at once in the caller, as before.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import connection

from common import request_context
from webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


# --- Group commit ---------------------------------------------------------------------------------


@dataclass(eq=False)
class _Slot(Generic[T, R]):
    item: T
    wake: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Leader/follower batching of one write across the threads of a process.

    ``flush(items)`` writes a batch and returns one result per item, in order. ``submit(item)``
    returns its item's result once the batch holding it was flushed (or raises the batch's error).
    """

    def __init__(self, flush: Callable[[list[T]], Sequence[R]]) -> None:
        self._flush = flush
        self._lock = threading.Lock()
        self._pending: list[_Slot[T, R]] = []
        self._busy = False
        self.batches = 0  # flushed batches, for tests and logs
        self.largest_batch = 0

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._pending.append(slot)
            lead = not self._busy
            self._busy = True
        if not lead:
            slot.wake.wait()
            if slot.done:
                return self._outcome(slot)
            # promoted: the previous leader finished while this slot was still queued
        self._lead()
        return self._outcome(slot)

    def _lead(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        try:
            results = self._flush([slot.item for slot in batch])
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except BaseException as exc:  # every caller of the batch gets the error (a 503: Stripe retries)
            for slot in batch:
                slot.error = exc
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        with self._lock:
            successor = self._pending[0] if self._pending else None
            if successor is None:
                self._busy = False
        for slot in batch:
            slot.done = True
            slot.wake.set()
        if successor is not None:
            successor.wake.set()  # not done: it leads the next batch

    @staticmethod
    def _outcome(slot: _Slot[T, R]) -> R:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]


def _insert_statement(rows: int) -> str:
    meta = WebhookEvent._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in meta.concrete_fields)
    values = "(" + ", ".join(["%s"] * len(meta.concrete_fields)) + ")"
    key = quote(meta.get_field("stripe_event_id").column)
    return (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([values] * rows)} "
        f"ON CONFLICT ({key}) DO NOTHING RETURNING {key}"
    )


def _insert_rows(rows: list[WebhookEvent]) -> list[bool]:
    """One statement on this thread's connection: whether each row was inserted (False: the
    event id was stored already, or earlier in the same batch)."""
    first: dict[str, WebhookEvent] = {}
    for row in rows:
        first.setdefault(row.stripe_event_id, row)
    unique = list(first.values())
    params: list[Any] = []
    for row in unique:
        for f in WebhookEvent._meta.concrete_fields:
            params.append(f.get_db_prep_save(f.pre_save(row, add=True), connection))
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(len(unique)), params)
        inserted = {value for (value,) in cursor.fetchall()}
    return [row.stripe_event_id in inserted and first[row.stripe_event_id] is row for row in rows]


_group = GroupCommit(_insert_rows)


def inbox_insert(*, row: WebhookEvent) -> bool:
    """Store one inbox row unless its Stripe event id is stored already. Returns whether it was inserted.

    In autocommit, concurrent callers share one statement (group commit); in a transaction,
    the row is written in it.
    """
    if connection.in_atomic_block:
        return _insert_rows([row])[0]
    return _group.submit(row)


# --- Hand-off to Celery ---------------------------------------------------------------------------


class Publisher:
    """Sends ``webhooks.process_event`` tasks from a daemon thread, in batches, one per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._pid = 0
        self._thread: threading.Thread | None = None
        self.sent = 0

    def publish(self, *, event_ids: Sequence[str]) -> None:
        from config.celery import app

        context = request_context.current()  # the delivery's request id travels with the task
        if app.conf.task_always_eager:
            self._send([(event_id, context) for event_id in event_ids])  # no broker: run now, in the caller
            return
        self._ensure_thread()
        for event_id in event_ids:
            self._queue.put((event_id, context))

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's thread and queue are not ours
                self._queue = queue.SimpleQueue()
                self._thread = None
                self._pid = os.getpid()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-handoff", daemon=True)
                self._thread.start()

    def _drain(self, first: tuple[str, dict[str, Any]] | None = None) -> list[tuple[str, dict[str, Any]]]:
        batch = [first] if first is not None else []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                return batch

    def _run(self) -> None:
        while True:
            self._send(self._drain(self._queue.get()))

    def _send(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Send each task with one pooled producer, its delivery's log context bound (Celery's
        publish signal carries it in the headers). Never raises: an unsent event is the sweep's."""
        from config.celery import app
        from webhooks.tasks import webhook_event_process_task

        if not items:
            return
        caller_context = request_context.snapshot()
        queue_name = settings.WEBHOOK_TASK_QUEUE
        options = {"queue": queue_name} if queue_name != app.conf.task_default_queue else {}
        sent = 0
        try:
            if app.conf.task_always_eager:
                for event_id, context in items:
                    request_context.restore(context)
                    webhook_event_process_task.apply_async(args=[event_id], **options)
                    sent += 1
            else:
                with app.producer_or_acquire() as producer:
                    for event_id, context in items:
                        request_context.restore(context)
                        webhook_event_process_task.apply_async(args=[event_id], producer=producer, **options)
                        sent += 1
        except Exception:
            logger.exception(
                "webhook.handoff_failed unsent=%d (the sweep queues them) first=%s", len(items) - sent, items[sent][0]
            )
        finally:
            request_context.restore(caller_context)
        self.sent += sent

    def flush(self) -> None:
        """Send what is queued now, in the caller (process exit; tests)."""
        if self._pid == os.getpid():
            self._send(self._drain())


publisher = Publisher()
atexit.register(publisher.flush)  # a graceful stop sends what it holds; a crash leaves it to the sweep
