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

The :class:`Outbox` runs two steps, over and over:

1. **fan-out** (one task for all consumers) — read the audit log once after the lowest cursor
   (:mod:`adapters.events` says which actions are events), give each consumer what its ``wants``
   accepts past its own cursor, and write every consumer's rows, with its new cursor, in one
   transaction. So an event is on disk before anything is attempted, and a restart resumes from the
   saved cursors. A consumer that wants nothing of what passed writes nothing: its cursor moves in
   memory and is saved with its next rows, or every :data:`CURSOR_SAVE_EVERY` events (after a
   restart those events are read and passed over again; ``UNIQUE (consumer, seq)`` keeps a row
   from being queued twice). A ``wants`` that raises queues the event undecided: the attempt asks
   again and dead-letters it if it still cannot tell, so one bad event neither blocks the others
   nor leaks to a consumer that did not want it.
2. **delivery** (one task per consumer) — the oldest pending row, one at a time (an OA sees a
   document before its status changes): when it is due, ask ``wants`` again (a subscription may
   have changed: a row no longer wanted is closed without delivery), then ``deliver`` it; mark it
   done only after ``deliver`` returned. A kill -9 between the receiver's answer and that commit
   leaves the row pending: it is delivered again with the same ``event_id``, which is what the
   receiver de-duplicates on. At-least-once on the wire, exactly-once at a receiver that keeps the
   ids it has seen. A row whose document has an earlier event dead for this consumer is
   dead-lettered too (``ADAPTER_EARLIER_EVENT_DEAD``): an OA never hears of a 撤回 or a 签收 about a
   document it was never given; replaying the consumer's dead rows delivers them in their order.

Several workers of one node on PostgreSQL (issue 12 §1) each run the fan-out and every consumer's
loop: ``oldest_pending`` claims a due row for one worker with a lease, a row another worker holds
comes back due when its lease ends, and :meth:`~node.store.AdapterOutboxStore.holding` keeps the lease
while the attempt runs (:mod:`node.store.postgresql.leases`); on SQLite both are plain reads.

A dead row waits for the operator: :meth:`Outbox.replay` (``gwx webhook replay``) puts it back,
due now, with a fresh window. ``gwx node status`` and ``gwx_adapter_outbox{consumer,state}`` count
rows per consumer and state.

The fan-out task wakes when the store commits audit events (``store.audit.watch``: the store's
write path says so, in this process, after the commit) and wakes the consumers it queued rows for;
it also looks every ``poll`` seconds (:data:`BACKSTOP_SECONDS`), as a backstop for events another
process committed (a ``gwx`` command on the node's database) and a notification lost to a bug. A
consumer's loop also wakes when a row falls due. Tests drive :meth:`Outbox.step` on a fake clock
instead.
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
from node.stopping import cancel_all_and_wait, cancel_and_wait
from node.store import AdapterOutboxRow, JournalEntry, NodeStore
from pki.errors import ErrorKind, GwxError

log = logging.getLogger("gwx.adapters")

# A consumer that does not say otherwise: first retry after 10 s, at most every 10 minutes, for a day.
DEFAULT_POLICY = RetryPolicy(min_delay=timedelta(seconds=10), max_delay=timedelta(minutes=10),
                             multiplier=2.0, jitter=0.5, max_age=timedelta(days=1))
DEFAULT_ATTEMPT_TIMEOUT = 60.0
BACKSTOP_SECONDS = 2.0  # the fan-out looks at the log this often even when no commit woke it
IDLE_SECONDS = 5.0  # an idle loop looks again this often even without a wake-up (belt and braces)
FAN_OUT_BATCH = 500
STOP_LOOP_SECONDS = 2.0  # how long stop() waits for the cancelled loops, together (an attempt is abandoned, not awaited)
CURSOR_SAVE_EVERY = 5000  # audit events a consumer may pass over before its cursor is saved anyway
ATTEMPT_OUTCOMES = ("done", "retry", "dead", "skipped")  # what _count records of an attempt


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


class EarlierEventDead(GwxError):
    """An earlier event of the same document is dead for this consumer: this one waits with it."""

    code = "ADAPTER_EARLIER_EVENT_DEAD"
    kind = ErrorKind.CONFLICT


@dataclass
class _Registered:
    consumer: Consumer
    policy: RetryPolicy
    attempt_timeout: float
    cursor: int = 0  # audit seq up to which events were offered to the consumer (in memory)
    saved: int = 0  # the cursor as the store holds it
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


class Outbox:
    def __init__(self, store: NodeStore, node_id: str, clock: Callable[[], datetime], *,
                 rand: Callable[[], float] = random.random, registry=None,
                 poll: float = BACKSTOP_SECONDS) -> None:
        self._store = store
        self._node_id = node_id
        self._clock = clock
        self._rand = rand
        self._poll = poll
        self._consumers: dict[str, _Registered] = {}
        self._incarnation: str | None = None  # which life of this node's database (event ids)
        self._running = False
        self._stopping = False  # stop() was called: a loop ends, an attempt's outcome is not recorded
        self._watcher: asyncio.Task | None = None
        self._head_moved = asyncio.Event()  # set by the store after a commit that appended audit events
        self._unwatch: Callable[[], None] | None = None
        self._attempts = registry.counter("gwx_adapter_attempts_total",
                                          "Adapter delivery attempts by consumer and outcome",
                                          labels=("consumer", "outcome")) if registry else None
        self._latency = registry.histogram("gwx_adapter_delivery_seconds",
                                           "Seconds from an event's commit to its delivery") if registry else None

    # --- consumers ---------------------------------------------------------------------------------
    async def add(self, consumer: Consumer, policy: RetryPolicy = DEFAULT_POLICY, *,
                  attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT) -> None:
        """Register ``consumer`` (its cursor starts at the log's head the first time its name is seen);
        its loop starts now if the outbox runs, else with :meth:`start`."""
        if consumer.name in self._consumers:
            raise StoreConflict(f"a consumer named {consumer.name} is registered already", consumer=consumer.name)
        cursor = await self._store.adapter_outbox.start_cursor(consumer.name)
        registered = _Registered(consumer, policy, attempt_timeout, cursor=cursor, saved=cursor)
        if self._attempts is not None:  # the consumer's series exist from its registration, at 0
            for outcome in ATTEMPT_OUTCOMES:
                self._attempts.declare(consumer=consumer.name, outcome=outcome)
        self._consumers[consumer.name] = registered
        if self._running:
            self._start_loop(registered)
            self._head_moved.set()  # what was committed since its cursor is queued now, not at the backstop

    async def remove(self, name: str) -> None:
        """Stop delivering to ``name`` (its rows and cursor stay: ``forget`` them in the store)."""
        registered = self._consumers.pop(name, None)
        if registered is not None and registered.task is not None:
            await _cancel(registered.task)

    def names(self) -> list[str]:
        return list(self._consumers)

    # --- running -----------------------------------------------------------------------------------
    async def start(self) -> None:
        self._running, self._stopping = True, False
        for registered in self._consumers.values():
            self._start_loop(registered)
        self._unwatch = self._store.audit.watch(lambda seq: self._head_moved.set())
        self._watcher = asyncio.get_running_loop().create_task(self._watch_head(), name="gwx-adapter-journal")

    async def stop(self) -> None:
        """Cancel every loop; an attempt in flight is abandoned and its row stays pending as it was
        (tried again, with the same event id, at the next start). Bounded: a loop that swallows the
        cancel (a library answering it with its own error) ends at its next turn or is cancelled again
        (:func:`node.stopping.cancel_and_wait`)."""
        self._running, self._stopping = False, True
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        tasks = [r.task for r in self._consumers.values() if r.task is not None]
        if self._watcher is not None:
            tasks.append(self._watcher)
        await cancel_all_and_wait(tasks, STOP_LOOP_SECONDS)  # side by side: a few stuck ones cost it once
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
        while not self._stopping:
            self._head_moved.clear()  # before reading: a commit during the fan-out wakes the next round
            try:
                if self._consumers:
                    await self.fan_out()
            except Exception:
                log.exception("adapters: fan-out from the audit log failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._head_moved.wait(), self._poll)

    async def _loop(self, registered: _Registered) -> None:
        name = registered.consumer.name
        while not self._stopping:
            registered.wake.clear()
            try:
                due = await self.deliver_due(name)
            except Exception:  # a store hiccup: log it, never stop delivering for good
                log.exception("adapter %s: step failed", name, extra={"consumer": name})
                due = None
            wait = IDLE_SECONDS if due is None else min(IDLE_SECONDS, (due - self._clock()).total_seconds())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(registered.wake.wait(), wait)

    # --- one step (what the loop repeats; tests call it on a fake clock) -------------------------
    async def step(self, name: str) -> datetime | None:
        """Fan out what is new, then deliver every due row of ``name`` in order. Returns when the
        oldest pending row falls due (it blocks those after it), or None when nothing is pending."""
        await self.fan_out()
        return await self.deliver_due(name)

    async def deliver_due(self, name: str) -> datetime | None:
        while True:
            row = await self._store.adapter_outbox.oldest_pending(name)
            if row is None:
                return None
            if row.next_attempt_at > self._clock():
                return row.next_attempt_at
            await self.attempt(name, row)

    async def fan_out(self, name: str | None = None) -> int:
        """Queue the new events of every consumer (or of ``name``); returns how many rows were written."""
        outbox = self._store.adapter_outbox
        targets = [self._registered(name)] if name is not None else list(self._consumers.values())
        queued = 0
        while targets:
            since = min(r.cursor for r in targets)
            entries, covered = await outbox.journal(since, ACTIONS, FAN_OUT_BATCH)
            if covered <= since:
                return queued
            if entries and self._incarnation is None:
                self._incarnation = await outbox.incarnation()
            events = [e for e in (self._event(entry) for entry in entries) if e is not None]
            moves = []
            for registered in targets:
                rows = [(e.seq, e.to_text()) for e in events if e.seq > registered.cursor and self._wanted(registered, e)]
                new_cursor = max(registered.cursor, covered)
                if rows or new_cursor - registered.saved >= CURSOR_SAVE_EVERY:
                    moves.append((registered, rows, new_cursor))
                else:
                    registered.cursor = new_cursor
            if moves:
                try:
                    written = await outbox.fan_out_many([(r.consumer.name, r.saved, cursor, rows)
                                                         for r, rows, cursor in moves])
                except StoreConflict:  # a cursor moved or went (a consumer forgotten): read them again
                    for registered in list(targets):
                        cursor = await outbox.cursor(registered.consumer.name)
                        if cursor is None:  # forgotten (a webhook removed): never make its cursor again
                            targets.remove(registered)
                        else:
                            registered.cursor = registered.saved = cursor
                    continue
                queued += written
                for registered, rows, cursor in moves:
                    registered.cursor = registered.saved = cursor
                    if rows:
                        registered.wake.set()

    def _event(self, entry: JournalEntry) -> AdapterEvent | None:
        assert self._incarnation is not None  # read with the first entries
        return adapter_event(self._node_id, entry.seq, entry.at, entry.action, entry.subjects, entry.details,
                             sent_by=entry.sent_by, title=entry.title, incarnation=self._incarnation)

    def _wanted(self, registered: _Registered, event: AdapterEvent) -> bool:
        """Whether to queue ``event``; a ``wants`` that raises queues it undecided (asked again when due)."""
        try:
            return bool(registered.consumer.wants(event))
        except Exception:
            log.exception("adapter %s: wants() raised on event %s; queued for the attempt to decide",
                          registered.consumer.name, event.event_id, extra={"consumer": registered.consumer.name})
            return True

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
            wanted = registered.consumer.wants(event)
        except Exception as exc:
            defect = ConsumerDefect(f"could not tell whether it wants this event: {type(exc).__name__}: {exc}",
                                    consumer=name)
            await outbox.mark_dead(row.id, defect, first_failure_at=self._clock())
            self._count(name, "dead")
            return False
        if not wanted:  # the subscription changed since the event was queued
            await outbox.mark_done(row.id)
            self._count(name, "skipped")
            return False
        if await outbox.earlier_dead(name, event.doc_id, row.seq):
            await outbox.mark_dead(row.id, EarlierEventDead(
                f"an earlier event of {event.doc_id} is dead-lettered for {name}; replay them together",
                consumer=name, doc_id=event.doc_id), first_failure_at=self._clock())
            self._count(name, "dead")
            return False
        # The lease is held (renewed) until the outcome is written, not only while the consumer is asked:
        # an outcome that waits its turn to be written must not let another worker deliver the event again.
        async with outbox.holding(row.id):
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
                if self._stopping:  # the outbox's cancel, answered by the consumer's library with its own error
                    raise asyncio.CancelledError from exc
                log.exception("adapter %s: deliver raised an untyped error", name, extra={"consumer": name})
                error = ConsumerDefect(f"{type(exc).__name__}: {exc}", consumer=name)
            else:
                await outbox.mark_done(row.id)
                self._count(name, "done")
                if self._latency is not None:
                    self._latency.observe(max(0.0, (self._clock() - event.at).total_seconds()))
                return True
            if self._stopping:
                # The node is stopping and this attempt was cut short (its error may be the cancel in
                # disguise, e.g. a connect cancelled mid-way reported as 'cannot connect'): the row stays
                # pending as it was, not counted as a failed attempt, and is tried at the next start.
                raise asyncio.CancelledError(f"stopping; {error.code} not recorded")
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
    await cancel_and_wait(task, STOP_LOOP_SECONDS)
