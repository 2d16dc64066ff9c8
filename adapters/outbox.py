"""The adapters' outbox: every event a consumer wants, persisted before any attempt, delivered in order.

A *consumer* (a webhook, a unit's OA, a unit's watched folder) implements :class:`Consumer`:

    class Consumer(Protocol):
        name: str                       # "webhook:3", "oa:<unit>", "folder:<unit>": the cursor key
        def wants(self, event: AdapterEvent) -> bool: ...
        async def deliver(self, event: AdapterEvent) -> None: ...

``deliver`` returning means done. Raising a :class:`~pki.errors.GwxError` means not done; its kind
decides, through :func:`node.error_kinds.disposition` (the one table): TRANSIENT (and the other
retryable kinds) are tried again with backoff from :mod:`exchange_protocol.retry` until the
consumer's window closes, then dead-lettered; INVALID_INPUT, NOT_FOUND … are dead at once. Any other
exception is a defect in the consumer: logged, and retried like an internal error.

For each consumer the :class:`Outbox` runs two steps, over and over:

1. **fan-out** — read the audit log after the consumer's cursor (:mod:`adapters.events` says which
   actions are events), keep what ``wants`` accepts, and write those rows and the new cursor in one
   transaction. So an event is on disk before anything is attempted, and a restart resumes exactly
   where the cursor stands.
2. **delivery** — the oldest pending row, one at a time (an OA sees a document before its status
   changes): when it is due, ``deliver`` it; mark it done only after ``deliver`` returned. A kill -9
   between the receiver's answer and that commit leaves the row pending: it is delivered again
   with the same ``event_id``, which is what the receiver de-duplicates on. At-least-once on the
   wire, exactly-once at a receiver that keeps the ids it has seen.

A dead row waits for the operator: :meth:`Outbox.replay` (``gwx webhook replay``) puts it back,
due now, with a fresh window. ``gwx node status`` and ``gwx_adapter_outbox{consumer,state}`` count
rows per consumer and state.

The loops wake when the audit log's head moves (one watcher polls it for all consumers, every
``poll`` seconds) or when a row falls due. Tests drive :meth:`Outbox.step` on a fake clock instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from adapters.events import ACTIONS, AdapterEvent, BadAdapterEvent, adapter_event
from exchange_protocol.retry import GIVE_UP, RetryPolicy, next_attempt
from node.error_kinds import Disposition, disposition
from node.errors import StoreConflict
from node.store import AdapterOutboxRow, NodeStore
from pki.errors import ErrorKind, GwxError

log = logging.getLogger("gwx.adapters")

# A consumer that does not say otherwise: first retry after 10 s, at most every 10 minutes, for a day.
DEFAULT_POLICY = RetryPolicy(min_delay=timedelta(seconds=10), max_delay=timedelta(minutes=10),
                             multiplier=2.0, jitter=0.5, max_age=timedelta(days=1))
DEFAULT_ATTEMPT_TIMEOUT = 60.0
POLL_SECONDS = 0.25
IDLE_SECONDS = 5.0  # an idle loop looks again this often even without a wake-up (belt and braces)
FAN_OUT_BATCH = 200


class Consumer(Protocol):
    name: str

    def wants(self, event: AdapterEvent) -> bool: ...

    async def deliver(self, event: AdapterEvent) -> None: ...


class ConsumerDefect(GwxError):
    """A consumer raised something that is not a typed error: a bug in the adapter, retried as internal."""

    code = "ADAPTER_CONSUMER_DEFECT"
    kind = ErrorKind.INTERNAL


class AttemptTimedOut(GwxError):
    """A delivery attempt took longer than the consumer's attempt timeout: tried again later."""

    code = "ADAPTER_ATTEMPT_TIMEOUT"
    kind = ErrorKind.TRANSIENT


class UnknownConsumer(GwxError):
    code = "ADAPTER_UNKNOWN_CONSUMER"
    kind = ErrorKind.NOT_FOUND


@dataclass
class _Registered:
    consumer: Consumer
    policy: RetryPolicy
    attempt_timeout: float
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


class Outbox:
    def __init__(self, store: NodeStore, node_id: str, clock: Callable[[], datetime], *,
                 rand: Callable[[], float] = random.random, registry=None,
                 poll: float = POLL_SECONDS) -> None:
        self._store = store
        self._node_id = node_id
        self._clock = clock
        self._rand = rand
        self._poll = poll
        self._consumers: dict[str, _Registered] = {}
        self._running = False
        self._watcher: asyncio.Task | None = None
        self._attempts = registry.counter("gwx_adapter_attempts_total",
                                          "Adapter delivery attempts by consumer and outcome") if registry else None
        self._latency = registry.histogram("gwx_adapter_delivery_seconds",
                                           "Seconds from an event's commit to its delivery") if registry else None

    # --- consumers ---------------------------------------------------------------------------------
    async def add(self, consumer: Consumer, policy: RetryPolicy = DEFAULT_POLICY, *,
                  attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT) -> None:
        """Register ``consumer`` (its cursor starts at the log's head the first time its name is seen);
        its loop starts now if the outbox runs, else with :meth:`start`."""
        if consumer.name in self._consumers:
            raise StoreConflict(f"a consumer named {consumer.name} is registered already", consumer=consumer.name)
        await self._store.adapter_outbox.start_cursor(consumer.name)
        registered = _Registered(consumer, policy, attempt_timeout)
        self._consumers[consumer.name] = registered
        if self._running:
            self._start_loop(registered)

    async def remove(self, name: str) -> None:
        """Stop delivering to ``name`` (its rows and cursor stay: ``forget`` them in the store)."""
        registered = self._consumers.pop(name, None)
        if registered is not None and registered.task is not None:
            await _cancel(registered.task)

    def names(self) -> list[str]:
        return list(self._consumers)

    # --- running -----------------------------------------------------------------------------------
    async def start(self) -> None:
        self._running = True
        for registered in self._consumers.values():
            self._start_loop(registered)
        self._watcher = asyncio.get_running_loop().create_task(self._watch_head(), name="gwx-adapter-journal")

    async def stop(self) -> None:
        """Cancel every loop; an attempt in flight is abandoned and its row stays pending (tried again,
        with the same event id, at the next start)."""
        self._running = False
        tasks = [r.task for r in self._consumers.values() if r.task is not None]
        if self._watcher is not None:
            tasks.append(self._watcher)
        for task in tasks:
            await _cancel(task)
        for registered in self._consumers.values():
            registered.task = None
        self._watcher = None

    def wake(self) -> None:
        for registered in self._consumers.values():
            registered.wake.set()

    def _start_loop(self, registered: _Registered) -> None:
        registered.task = asyncio.get_running_loop().create_task(
            self._loop(registered), name=f"gwx-adapter-{registered.consumer.name}")

    async def _watch_head(self) -> None:
        seen = -1
        while True:
            try:
                head = await self._store.adapter_outbox.head()
                if head != seen:
                    seen = head
                    self.wake()
            except Exception:
                log.exception("cannot read the audit log's head")
            await asyncio.sleep(self._poll)

    async def _loop(self, registered: _Registered) -> None:
        name = registered.consumer.name
        while True:
            registered.wake.clear()
            try:
                due = await self.step(name)
            except Exception:  # a store hiccup: log it, never stop delivering for good
                log.exception("adapter %s: step failed", name, extra={"consumer": name})
                due = None
            wait = IDLE_SECONDS if due is None else min(IDLE_SECONDS, (due - self._clock()).total_seconds())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(registered.wake.wait(), wait)

    # --- one step (what the loop repeats; tests call it on a fake clock) -------------------------
    async def step(self, name: str) -> datetime | None:
        """Fan out what is new, then deliver every due row in order. Returns when the oldest pending
        row falls due (it blocks those after it), or None when nothing is pending."""
        await self.fan_out(name)
        while True:
            row = await self._store.adapter_outbox.oldest_pending(name)
            if row is None:
                return None
            if row.next_attempt_at > self._clock():
                return row.next_attempt_at
            await self.attempt(name, row)

    async def fan_out(self, name: str) -> int:
        """Queue the consumer's new events; returns how many rows it wrote."""
        registered = self._registered(name)
        outbox = self._store.adapter_outbox
        queued = 0
        while True:
            cursor = await outbox.start_cursor(name)
            entries, covered = await outbox.journal(cursor, ACTIONS, FAN_OUT_BATCH)
            if covered <= cursor:
                return queued
            rows = []
            for entry in entries:
                event = adapter_event(self._node_id, entry.seq, entry.at, entry.action, entry.subjects,
                                      entry.details, sent_by=entry.sent_by, title=entry.title)
                if event is not None and registered.consumer.wants(event):
                    rows.append((event.seq, event.to_text()))
            queued += await outbox.fan_out(name, cursor, covered, rows)

    async def attempt(self, name: str, row: AdapterOutboxRow) -> bool:
        """One attempt at ``row``; True when delivered. The outcome is committed before returning."""
        registered = self._registered(name)
        outbox = self._store.adapter_outbox
        try:
            event = AdapterEvent.from_json(row.event)
        except BadAdapterEvent as exc:
            await outbox.mark_dead(row.id, exc, first_failure_at=self._clock())
            self._count(name, "dead")
            return False
        try:
            async with asyncio.timeout(registered.attempt_timeout):
                await registered.consumer.deliver(event)
        except GwxError as exc:
            error: GwxError = exc
        except TimeoutError:
            error = AttemptTimedOut(f"no answer within {registered.attempt_timeout:g}s", consumer=name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("adapter %s: deliver raised an untyped error", name, extra={"consumer": name})
            error = ConsumerDefect(f"{type(exc).__name__}: {exc}", consumer=name)
        else:
            await outbox.mark_done(row.id)
            self._count(name, "done")
            if self._latency is not None:
                self._latency.observe(max(0.0, (self._clock() - event.at).total_seconds()))
            return True
        await self._failed(registered, row, error)
        return False

    async def _failed(self, registered: _Registered, row: AdapterOutboxRow, error: GwxError) -> None:
        name, outbox, now = registered.consumer.name, self._store.adapter_outbox, self._clock()
        first_failure = row.first_failure_at or now
        when = (next_attempt(row.attempts + 1, first_failure, now, registered.policy, self._rand())
                if disposition(error) is Disposition.RETRY else GIVE_UP)
        extra = {"consumer": name, "code": error.code, "seq": row.seq}
        if when is GIVE_UP:
            await outbox.mark_dead(row.id, error, first_failure_at=first_failure)
            log.warning("adapter %s: event %s dead-lettered: %s", name, row.seq, error, extra=extra)
            self._count(name, "dead")
        else:
            await outbox.mark_retry(row.id, when, first_failure, error)
            log.info("adapter %s: event %s not delivered (%s); next attempt %s", name, row.seq, error.code,
                     when.isoformat(), extra=extra)
            self._count(name, "retry")

    # --- operators -------------------------------------------------------------------------------------
    async def replay(self, name: str, row_ids: list[int] | None = None) -> int:
        replayed = await self._store.adapter_outbox.replay(name, row_ids)
        if name in self._consumers:
            self._consumers[name].wake.set()
        return replayed

    def _registered(self, name: str) -> _Registered:
        try:
            return self._consumers[name]
        except KeyError:
            raise UnknownConsumer(f"no adapter consumer named {name}", consumer=name) from None

    def _count(self, name: str, outcome: str) -> None:
        if self._attempts is not None:
            self._attempts.inc(consumer=name, outcome=outcome)


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
