"""Group commit for the hot paths: accepting envelopes durably, and the clerks' own actions.

Each acceptance would otherwise cost a transaction of its own: half a dozen aiosqlite round trips
(~100 µs each) and, with ``synchronous=FULL``, one WAL fsync. Instead callers put a request on a
queue and await a future; one writer task takes everything queued (up to ``max_batch``, of which at
most :data:`MAX_WORKS_PER_BATCH` clerk actions, so receipts to peers do not wait long), applies it
in ONE transaction with ``executemany``, commits (one fsync), and only then resolves each caller's
future. While a commit is in flight, new requests pile up and form the next batch, so the batch size
grows with load by itself and no timer adds latency when the node is idle.

A request that fails on its own (a replayed envelope) gets its typed error without disturbing the
others. If the batch transaction itself fails (e.g. a duplicate enqueue violating a key), it is
rolled back and every request is retried in a transaction of its own, so only the culprit fails.
A caller that gives up (cancelled) does not cancel the write: its row may still commit, which is
harmless because the peer will retry and get the original receipt.

:meth:`GroupCommitter.write_together` does the same for any unit of work written against a
transaction — the clerks' 签收, 退回, 登记, 撤回 and 催办 (:mod:`node.documents.service`), where a
township's twenty clerks signing at once used to queue for the writer one transaction and one
fsync each. Each work runs inside a SAVEPOINT of the batch's transaction: one that raises is rolled
back to its savepoint and its caller gets the error, the others commit. A work must read the rows
it decides on through the transaction it is given (``get_inbox(..., tx=tx)``): the store's reader
connection does not see what earlier works of the same batch wrote, and a decision on such a stale
row would overwrite their work (three 催办 counted once, a 催办 erased by the 签收 after it). Should a
work still meet a write of its batch (:class:`~node.errors.StoreConflict`), it is run once more on
its own after the batch commits, as it would have run had it come a moment later. A work must pass
the transaction it is given to every write and open none of its own (the writer is held: that would
wait for ever).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from exchange_protocol.errors import EnvelopeReplayed
from node.errors import StoreConflict, StoreError
from node.store.sqlite.db import Database, SqliteTransaction
from node.store.sqlite.inline_blobs import InlineBlobs
from node.store.sqlite.messages import Messages
from node.store.sqlite.queue import OutboundQueue
from node.store.values import Accepted, InboundEnvelope, OutboundItem

log = logging.getLogger("gwx.store")
T = TypeVar("T")
# Clerk actions in one batch at most: each costs several round trips under the writer's lock, and
# receipts to peers (accepting envelopes) wait behind it; 512 of them held it far too long.
MAX_WORKS_PER_BATCH = 64


@dataclass(frozen=True)
class _Accept:
    envelope: InboundEnvelope
    forward: OutboundItem | None


@dataclass(frozen=True)
class _Relay:
    """Envelopes of one frame a relay takes in custody, each with its onward queue row: all or none."""

    pairs: tuple[tuple[InboundEnvelope, OutboundItem], ...]


@dataclass(frozen=True)
class _Enqueue:
    item: OutboundItem


@dataclass(frozen=True)
class _Work:
    """A caller's unit of work, written against the batch's transaction inside a savepoint."""

    run: Callable[[SqliteTransaction], Awaitable[Any]]
    after: Callable[[Any], None] | None = None  # given the result once committed, even if its caller gave up


class GroupCommitter:
    def __init__(self, db: Database, messages: Messages, queue: OutboundQueue, *, max_batch: int = 512,
                 inline: InlineBlobs | None = None) -> None:
        self._db = db
        self._inline = inline
        self._messages = messages
        self._queue = queue
        self._max_batch = max_batch
        self._requests: asyncio.Queue[tuple[Any, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._next: tuple[Any, asyncio.Future[Any]] | None = None  # a work left over for the next batch
        self.batches = 0       # figures for the benchmark and /metrics
        self.requests = 0
        self.works_alone = 0   # works run again on their own after meeting a write of their batch

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="gwx-store-group-commit")

    async def close(self) -> None:
        """Finish every request already submitted, then stop the writer."""
        self._closing = True
        if self._task is not None:
            self._requests.put_nowait(None)
            await self._task
            self._task = None

    async def accept_inbound(self, envelope: InboundEnvelope, *, forward: OutboundItem | None = None) -> Accepted:
        """Record an inbound envelope (and, for a relay, queue it onward) durably.

        Returns once committed: ``Accepted.new`` and the receipt to answer with (the original one
        for a duplicate). Raises ``ENV_REPLAYED`` for the same id with other bytes.
        """
        return await self._submit(_Accept(envelope, forward))

    async def relay_inbound(self, pairs: Sequence[tuple[InboundEnvelope, OutboundItem]]) -> list[Accepted | EnvelopeReplayed]:
        """Record the envelopes of one frame taken in custody, each queued onward, in ONE transaction
        (a crash keeps all of them or none); per envelope the result ``accept_inbound`` gives, a
        replay as its error value."""
        return await self._submit(_Relay(tuple(pairs)))

    async def enqueue(self, item: OutboundItem) -> None:
        """Queue an outbound envelope durably (its blob must already be stored)."""
        await self._submit(_Enqueue(item))

    async def write_together(self, work: Callable[[SqliteTransaction], Awaitable[T]], *,
                             after: Callable[[T], None] | None = None) -> T:
        """Run ``work(tx)`` in a transaction shared with the other writes that arrive meanwhile;
        returns its result once that transaction has committed (durable), or raises its error
        (its writes rolled back, the others' kept). ``after(result)`` is called by the writer once
        the work has committed — also when its caller was cancelled meanwhile, which a caller's own
        code after the ``await`` would not be: what must follow a commit (waking the queue of the
        notice it drafted) belongs there."""
        return await self._submit(_Work(work, after))

    async def _submit(self, request: Any) -> Any:
        if self._closing or self._task is None:
            raise StoreError("the store is closing or not started; no more writes")
        if asyncio.current_task() is self._task:  # a work writing on its own: it would wait for itself
            raise StoreError("a group-committed work asked for a write of its own; pass its transaction down")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._requests.put_nowait((request, future))
        return await future

    async def _run(self) -> None:
        stop = False
        while not stop or self._next is not None:
            first, self._next = (self._next, None) if self._next is not None else (await self._requests.get(), None)
            if first is None:
                break
            batch = [first]
            works = isinstance(first[0], _Work)
            while not stop and len(batch) < self._max_batch and not self._requests.empty():
                item = self._requests.get_nowait()
                if item is None:
                    stop = True
                    break
                if isinstance(item[0], _Work):
                    if works == MAX_WORKS_PER_BATCH:
                        self._next = item  # first of the next batch
                        break
                    works += 1
                batch.append(item)
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        self.batches += 1
        self.requests += len(batch)
        if len(batch) == 1 and isinstance(batch[0][0], _Work):
            request, future = batch[0]
            _settle(future, _then(request, await self._alone(request, count=False)))  # no savepoint needed
            return
        try:
            async with self._db.transaction() as tx:
                outcomes = await self._apply(tx, [request for request, _ in batch])
        except Exception as exc:
            log.warning("group commit of %d requests failed (%s); retrying one by one", len(batch), exc)
            for request, future in batch:
                try:
                    async with self._db.transaction() as tx:
                        outcome = (await self._apply(tx, [request]))[0]
                except Exception as single:
                    outcome = single
                _settle(future, _then(request, outcome))
            return
        for (request, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(request, _Work) and isinstance(outcome, StoreConflict):
                outcome = await self._alone(request)  # it met a write of its own batch: now committed
            _settle(future, _then(request, outcome))

    async def _alone(self, request: _Work, *, count: bool = True) -> Any:
        """``request`` in a transaction of its own: its result, or its error with it rolled back."""
        self.works_alone += count
        try:
            async with self._db.transaction() as tx:
                return await request.run(tx)
        except Exception as exc:
            return exc

    async def _apply(self, tx: SqliteTransaction, requests: list[Any]) -> list[Any]:
        """Apply requests in one transaction; returns per-request results or typed errors."""
        # Every envelope of the batch, flattened: (request index, envelope, onward row or None).
        flat = [(i, r.envelope, r.forward) for i, r in enumerate(requests) if isinstance(r, _Accept)]
        flat += [(i, env, fwd) for i, r in enumerate(requests) if isinstance(r, _Relay) for env, fwd in r.pairs]
        outcomes: list[Any] = [None] * len(requests)
        forwards: list[OutboundItem] = []
        if flat:
            results = await self._messages.accept_inbound_batch(tx, [env for _, env, _ in flat])
            for (i, _, forward), result in zip(flat, results, strict=True):
                if isinstance(requests[i], _Relay):
                    outcomes[i] = [*(outcomes[i] or []), result]
                else:
                    outcomes[i] = result
                if isinstance(result, Accepted) and result.new and forward is not None:
                    forwards.append(forward)
            inline = [blob for (_, env, _), result in zip(flat, results, strict=True)
                      if isinstance(result, Accepted) and result.new for blob in env.inline]
            if inline:
                if self._inline is None:
                    raise StoreError("inline blobs given to a store without an inline_blobs table")
                await self._inline.add(tx, inline)
        enqueues = [r.item for r in requests if isinstance(r, _Enqueue)]
        if forwards or enqueues:
            await self._queue.enqueue_many(forwards + enqueues, tx=tx)
        for i, work in enumerate(requests):
            if isinstance(work, _Work):
                outcomes[i] = await _in_savepoint(tx, work)
        return outcomes


async def _in_savepoint(tx: SqliteTransaction, work: _Work) -> Any:
    """``work``'s result, or its error with its writes undone and the batch's others kept."""
    head = tx.audit_head  # the audit chain's head as the work found it: restored if it is undone
    await tx.execute("SAVEPOINT work")
    try:
        result = await work.run(tx)
        await tx.execute("RELEASE work")  # in the try: a statement sent unanswered meets its error here
    except Exception as exc:
        await tx.execute("ROLLBACK TO work")
        await tx.execute("RELEASE work")
        tx.audit_head = head
        return exc
    return result


def _then(request: Any, outcome: Any) -> Any:
    """Run a committed work's ``after`` with its result; returns the outcome to give its caller."""
    if isinstance(request, _Work) and request.after is not None and not isinstance(outcome, BaseException):
        try:
            request.after(outcome)
        except Exception:  # the work is committed: its caller gets its result all the same
            log.exception("what follows a committed write failed")
    return outcome


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # the caller gave up waiting
        return
    if isinstance(outcome, BaseException):
        if isinstance(outcome, EnvelopeReplayed):
            log.info("replayed envelope refused", extra={"message_id": outcome.details.get("message_id"),
                                                         "code": outcome.code})
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
