"""A group commit's inline blobs written before the writers' lock is taken (issue 12 §2).

Several workers of one node take turns on one advisory lock (:data:`.db.WRITER_LOCK`), and half of
the acceptor's turn went to sending the inline blobs' bytes (docs/performance.md, "Why the acceptor's
group commit held the writers' lock …"). Those rows need no lock: a blob row is named by its digest,
written with ``ON CONFLICT DO NOTHING``, and no decision reads it. So :class:`AheadCommitter` writes
the inline blobs of every envelope of a batch in a transaction of their own, committed *before* the
locked one (:meth:`InlineBlobsAhead.ahead`); the locked transaction then carries the small rows only.

- **Two workers, the same blobs** (one envelope delivered to both at once): each writes its rows
  sorted by digest, so one waits for the other on the unique index in the same order and no cycle
  (a deadlock) can form; the second's rows are no-ops once the first commits.
- **The garbage collection between the two** (``InlineBlobs.collect``, any worker's housekeeping,
  under the lock) may delete a row written ahead that no ``received`` row names yet. The locked
  transaction therefore checks that its blobs are there (:meth:`InlineBlobsAhead.add`: one read sent
  in pipeline mode and looked at with the settle before COMMIT, no wait of its own) and writes
  what is missing itself, under the lock, where no collection can run. The same covers a batch
  whose rows ahead failed: the locked transaction writes them, as before.
- **A replayed envelope** (its id known, other bytes): its blobs were written ahead all the same; the
  locked transaction deletes those no row names (one statement sent in pipeline mode, only when
  the batch held a replay), so a refused envelope keeps nothing, as on SQLite. A duplicate's are
  the stored envelope's own.
- **One lock order**: a write-ahead takes no writers' lock and may wait for a locked transaction
  (and the other way round), so every transaction that touches these rows inserts in digest order
  and only then deletes. A locked transaction that deleted a replay's row Y first (row-locking it)
  and then wrote a missing X would wait for a write-ahead holding X uncommitted while that one
  waited to insert Y: a cycle PostgreSQL breaks only after ``deadlock_timeout`` (1 s), the writers'
  lock held meanwhile, and by aborting the locked batch. So :meth:`InlineBlobsAhead.forget`'s DELETE
  is sent at the settle after :meth:`~InlineBlobsAhead.add`'s missing rows. Chosen over a short
  ``lock_timeout`` on the write-ahead: that would also give way when two workers write the same
  large blobs at once (a wait that is no cycle), sending those bytes again under the lock, and the
  locked batch would still wait out the timeout. The DELETE then waits for nobody (a write-ahead's
  uncommitted rows are not in its snapshot), and a write-ahead meeting the deleted row waits for
  the COMMIT, as for any other writer.
- **A crash between the two**, a batch rolled back: rows ahead that no row names — the next
  collection (hourly housekeeping, start-up recovery) deletes them.
- **Durability**: both COMMITs return before the receipts are signed (the group commit answers its
  callers after the locked one), and the blob rows' COMMIT comes first.

SQLite has one writer and keeps its blobs in the transaction (:mod:`node.store.sqlite.inline_blobs`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from exchange_protocol.errors import EnvelopeReplayed
from node.store.blobs import check_digest
from node.store.postgresql.db import Database, PgTransaction, Row
from node.store.sqlite.group_commit import GroupCommitter, _Accept, _Relay
from node.store.sqlite.inline_blobs import InlineBlobs
from node.store.values import Accepted, InboundEnvelope

log = logging.getLogger("gwx.store")

_INSERT = "INSERT INTO inline_blobs (digest, size, data) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING"


def _rows(blobs: Sequence[tuple[str, bytes]]) -> list[tuple[str, int, bytes]]:
    """``(digest, size, bytes)`` once per digest, sorted by digest (the order every writer locks them in)."""
    unique = {check_digest(digest): data for digest, data in blobs}
    return [(digest, len(unique[digest]), bytes(unique[digest])) for digest in sorted(unique)]


class InlineBlobsAhead(InlineBlobs):
    """:class:`InlineBlobs` whose rows are written ahead of the locked transaction, then checked in it."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)  # type: ignore[arg-type]
        self._pg = db
        self.written_ahead = 0   # rows sent ahead of the lock (figures, tests)
        self.written_locked = 0  # rows the locked transaction found missing and wrote itself

    async def ahead(self, blobs: Sequence[tuple[str, bytes]]) -> None:
        """Write and commit ``blobs`` in a transaction that does not take the writers' lock."""
        rows = _rows(blobs)
        if not rows:
            return
        async with self._pg.unlocked_transaction() as tx:
            await tx.send_many(_INSERT, rows)
        self.written_ahead += len(rows)

    async def add(self, tx: PgTransaction, blobs: Sequence[tuple[str, bytes]]) -> None:  # type: ignore[override]
        """Inside the locked ``tx``: ``blobs`` durable with it — those already written ahead checked
        at the settle, the others (collected meanwhile, or never written ahead) written then."""
        wanted = {row[0]: row for row in _rows(blobs)}
        if not wanted:
            return

        async def write_missing(found: list[Row]) -> None:
            missing = [wanted[digest] for digest in sorted(set(wanted) - {row[0] for row in found})]
            if missing:
                self.written_locked += len(missing)
                await tx.send_many(_INSERT, missing)

        await tx.send_checked("SELECT digest FROM inline_blobs WHERE digest = ANY(?)", (list(wanted),),
                              write_missing)

    async def forget(self, tx: PgTransaction, digests: set[str]) -> None:
        """Inside the locked ``tx``: delete the rows of ``digests`` (a refused envelope's, written ahead)
        that no row names — at the settle, after :meth:`add`'s missing rows are written (the lock
        order: the module's docstring, "one lock order")."""
        if digests:
            chosen = sorted(digests)

            async def delete(_: list[Row]) -> None:
                await tx.send("DELETE FROM inline_blobs WHERE digest = ANY(?) AND digest NOT IN"
                              " (SELECT digest FROM blob_refs WHERE digest = ANY(?))", (chosen, chosen))

            await tx.send_checked("SELECT 1", (), delete)  # its turn comes after add's check, sent before


def _envelopes(request: Any) -> tuple[InboundEnvelope, ...]:
    if isinstance(request, _Accept):
        return (request.envelope,)
    if isinstance(request, _Relay):
        return tuple(envelope for envelope, _ in request.pairs)
    return ()


def _results(request: Any, outcome: Any) -> list[tuple[InboundEnvelope, Any]]:
    """Each envelope of ``request`` with what accepting it gave (``Accepted``, or a replay's error)."""
    if isinstance(request, _Relay):
        return list(zip(_envelopes(request), outcome if isinstance(outcome, list) else [], strict=False))
    return [(envelope, outcome) for envelope in _envelopes(request)]


class AheadCommitter(GroupCommitter):
    """The group commit of a PostgreSQL store: a batch's inline blobs written ahead, then the batch."""

    _inline: InlineBlobsAhead

    async def _commit(self, batch: list[tuple[Any, Any]]) -> None:
        blobs = [blob for request, _ in batch for envelope in _envelopes(request) for blob in envelope.inline]
        if blobs:
            try:
                await self._inline.ahead(blobs)
            except Exception as exc:  # the locked transaction writes what is not there
                log.warning("writing %d inline blobs ahead of the lock failed (%s)", len(blobs), exc)
        await super()._commit(batch)

    async def _apply(self, tx: Any, requests: list[Any]) -> list[Any]:
        outcomes = await super()._apply(tx, requests)
        kept: set[str] = set()
        refused: set[str] = set()
        for request, outcome in zip(requests, outcomes, strict=True):
            for envelope, result in _results(request, outcome):
                digests = {digest for digest, _ in envelope.inline}
                if isinstance(result, Accepted) and result.new:
                    kept |= digests
                elif isinstance(result, EnvelopeReplayed):
                    refused |= digests
        await self._inline.forget(tx, refused - kept)
        return outcomes
