"""The node's store: database, blobs, queue, messages and audit log behind one object.

``Store.open(data_dir)`` opens ``data_dir/gwx.db`` and ``data_dir/blobs``, applies migrations,
rebuilds after a crash (:meth:`Store.recover`) and starts the group-commit writer. It implements
:class:`node.store.interfaces.NodeStore`: the rest of the node talks to the parts (``store.queue``,
``store.peers``, ``store.messages``, ``store.drafts``, ``store.links``, ``store.peer_credentials``,
``store.adapter_outbox``, ``store.accounts``, ``store.audit``, ``store.blobs``) and composes several changes atomically with
``async with store.transaction() as tx:`` passing ``tx=tx``.

Recovery after a crash (even kill -9), in the Postfix spirit: the disk is the truth.
- ``tmp/*.part`` files are interrupted writes: deleted.
- Small blobs live in the database for good (:mod:`.inline_blobs`), committed with their row: a
  crash loses none, and nothing on disk needs rebuilding for them. Cache copies of them made for
  readers that need a file (``blobs/cache``) are dropped.
- ``active`` queue rows were in flight in a process that no longer exists: back to the queue.
- A row whose blob is missing is corrupt: queue rows and unprocessed received envelopes move to
  ``corrupt`` with ``STORE_BLOB_MISSING`` logged; inbox/outbox rows are reported and logged (they
  have no corrupt state; their audit history says what they were).
- Blobs no row names are the residue of writes whose row never committed: garbage, collected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from node.errors import BlobMissing
from node.store.blobs import BlobStore
from node.store.sqlite.accounts import ConsoleAccounts
from node.store.sqlite.adapter_outbox import AdapterOutbox
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import Database, SqliteTransaction
from node.store.sqlite.evidence import Evidence
from node.store.sqlite.exchange import Drafts, OutgoingLinks
from node.store.sqlite.forwards import Forwards
from node.store.sqlite.group_commit import GroupCommitter
from node.store.sqlite.inline_blobs import InlineBlobs, SqliteReader
from node.store.sqlite.ledger import Ledger
from node.store.sqlite.messages import Messages
from node.store.sqlite.migrations import migrate
from node.store.sqlite.peers import PeerCredentials, Peers
from node.store.sqlite.queue import OutboundQueue
from node.store.sqlite.supervision import Supervision
from node.store.values import Accepted, InboundEnvelope, OutboundItem, RecoveryReport

log = logging.getLogger("gwx.store")

T = TypeVar("T")
S = TypeVar("S", bound="Store")
DB_NAME = "gwx.db"
BLOB_DIR = "blobs"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    # How old a temp file or an unreferenced blob must be before recovery deletes it. 0 here: the
    # process recovering is the only one writing (node.run_lock). The PostgreSQL store's workers share
    # the blob directory, and another worker's blob may be on disk with its row not yet committed.
    SHARED_BLOBS_GRACE_SECONDS = 0.0

    def __init__(self, db: Database, blobs: BlobStore, clock: Callable[[], datetime], max_batch: int,
                 node_id: str | None = None) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self.audit = AuditLog(db, clock)
        self.queue = OutboundQueue(db, self.audit, clock)
        self.peers = Peers(db, self.audit, clock)
        self.messages = Messages(db, self.audit, clock)
        self.drafts = Drafts(db, node_id)
        self.links = OutgoingLinks(db)
        self.peer_credentials = PeerCredentials(db)
        self.adapter_outbox = AdapterOutbox(db, self.audit, clock)
        self.accounts = ConsoleAccounts(db, self.audit, clock)  # the console's users and sessions
        self.ledger = Ledger(db)
        self.supervision = Supervision(db, self.audit, clock)  # 督办 (issue 10 §2)
        self.forwards = Forwards(db, self.audit, clock)  # 转发 (issue 10 §5)
        self.evidence = Evidence(db, clock)  # unit-signed 签收/退回 statements (issue 10 §4)
        self.inline = InlineBlobs(db)  # small blobs' bytes in the database for good (migration 20)
        blobs.inline = self._inline_reader()
        self.committer = GroupCommitter(db, self.messages, self.queue, max_batch=max_batch, inline=self.inline)
        self.last_recovery: RecoveryReport | None = None  # what the start-up recovery found

    def _inline_reader(self) -> SqliteReader:
        return SqliteReader(self.db.path)

    @classmethod
    async def open(cls, data_dir: str | Path, *, clock: Callable[[], datetime] = _utc_now,
                   max_blob_size: int | None = None, recover: bool = True,
                   max_batch: int = 512, blob_threads: int = 32, node_id: str | None = None) -> Store:
        """``node_id``: the node this store belongs to (the origin of draft rows written before
        drafts recorded it); tests of the store alone may leave it out."""
        data_dir = Path(data_dir)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = await Database.open(data_dir / DB_NAME)
        return await cls._opened(
            db, lambda: migrate(db, clock()),
            lambda: BlobStore(data_dir / BLOB_DIR, max_size=max_blob_size, threads=blob_threads),
            lambda blobs: cls(db, blobs, clock, max_batch, node_id), recover=recover)

    @classmethod
    async def _opened(cls, db: Any, prepare: Callable[[], Awaitable[Any]], blobs: Callable[[], BlobStore],
                      build: Callable[[BlobStore], S], *, recover: bool) -> S:
        """What every backend's ``open`` does once its database is open: ``prepare`` it (migrations),
        open the blob store, ``build`` the store, recover after a crash and start the group commit —
        closing what was opened if any step fails."""
        try:
            await prepare()
            opened = blobs()
        except BaseException:
            await db.close()
            raise
        store = build(opened)
        try:
            if recover:
                store.last_recovery = await store.recover()
            store.committer.start()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        try:
            await self.committer.close()
        finally:
            self.blobs.close()
            if self.blobs.inline is not None:
                self.blobs.inline.close()  # type: ignore[attr-defined]
            await self.db.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        async with self.db.transaction() as tx:
            yield tx

    # --- hot path (group-committed) -----------------------------------------------------------
    async def accept_inbound(self, envelope: InboundEnvelope, *, forward: OutboundItem | None = None) -> Accepted:
        return await self.committer.accept_inbound(envelope, forward=forward)

    async def relay_inbound(self, pairs: Sequence[tuple[InboundEnvelope, OutboundItem]]) -> list[Any]:
        return await self.committer.relay_inbound(pairs)

    async def enqueue(self, item: OutboundItem) -> None:
        await self.committer.enqueue(item)

    async def write_together(self, work: Callable[[SqliteTransaction], Awaitable[T]], *,
                             after: Callable[[T], None] | None = None) -> T:
        return await self.committer.write_together(work, after=after)

    # --- recovery and garbage -----------------------------------------------------------------
    async def recover(self, *, grace_seconds: float = 0.0) -> RecoveryReport:
        """Rebuild a consistent state from disk; run at start-up before accepting anything."""
        temp_removed = await asyncio.to_thread(self.blobs.cleanup_temp, self.SHARED_BLOBS_GRACE_SECONDS)
        # Cache copies: the same grace as blobs. SQLite: 0, the process starting is the only one (its run
        # lock), so nothing can be serving a copy; PostgreSQL: other live workers may be serving theirs.
        await asyncio.to_thread(self.blobs.clear_cache, self.SHARED_BLOBS_GRACE_SECONDS)
        async with self.db.transaction() as tx:
            requeued = await self.queue.requeue_active(tx)

        corrupt_queue = await self._missing_blobs(await self.queue.at_rest())
        for message_id, digest in corrupt_queue:
            error = BlobMissing("the blob of a queued envelope is missing", digest=digest, message_id=message_id)
            log.error(error.message, extra={"message_id": message_id, "code": error.code})
            await self.queue.mark_corrupt(message_id, error)
        # An acknowledged envelope still to be applied needs both its envelope and its payload blob.
        corrupt_received = await self._missing(
            "SELECT message_id, blob_digest FROM received WHERE state = 'new'"
            " UNION ALL SELECT message_id, payload_digest FROM received"
            " WHERE state = 'new' AND payload_digest IS NOT NULL")
        for message_id, digest in dict(corrupt_received).items():
            error = BlobMissing("the blob of a received envelope we gave a receipt for is missing", digest=digest, message_id=message_id)
            log.error(error.message, extra={"message_id": message_id, "code": error.code})
            await self.messages.mark_inbound(message_id, "corrupt", error=error)
        corrupt_drafts = await self._missing("SELECT message_id, payload_digest FROM drafts WHERE payload IS NULL")
        for message_id, digest in corrupt_drafts:
            # The draft can never be built; its queued recipients will show it was never sent.
            error = BlobMissing("the payload blob of a draft is missing", digest=digest, message_id=message_id)
            log.error(error.message, extra={"message_id": message_id, "code": error.code})
            async with self.db.transaction() as tx:
                await self.drafts.delete_draft(tx, message_id)
                await self.audit.append(tx, "node", "draft.corrupt", {"message_id": message_id},
                                        {"error": error.code, "digest": digest})
        missing_packages = await self._missing(
            "SELECT doc_id, package_digest FROM outbox UNION SELECT doc_id, package_digest FROM inbox")
        for doc_id, digest in missing_packages:
            error = BlobMissing("the package blob of a document (公文包) is missing", digest=digest, doc_id=doc_id)
            log.error(error.message, extra={"doc_id": doc_id, "code": error.code})

        orphans = await self.collect_garbage(grace_seconds=max(grace_seconds, self.SHARED_BLOBS_GRACE_SECONDS))
        report = RecoveryReport(temp_removed, requeued, tuple(m for m, _ in corrupt_queue),
                                tuple(dict(corrupt_received)), tuple(d for d, _ in missing_packages),
                                tuple(orphans), tuple(m for m, _ in corrupt_drafts))
        # A warning only when something was wrong (a crash mid-write or mid-send, blobs gone); blobs
        # no row needs any more are what every run leaves (delivered messages), collected quietly.
        if temp_removed or requeued or corrupt_queue or corrupt_received or corrupt_drafts:
            log.warning("store recovered after an unclean stop: %s", report)
        elif orphans:
            log.info("store: %d blobs no longer referenced removed", len(orphans))
        return report

    async def _missing(self, sql: str) -> list[tuple[str, str]]:
        return await self._missing_blobs([(r[0], r[1]) for r in await self.db.fetchall(sql)])

    async def _missing_blobs(self, rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The (key, digest) pairs whose blob is not on disk."""
        return await asyncio.to_thread(lambda: [(k, d) for k, d in rows if not self.blobs.exists(d)])

    async def referenced(self, digests: list[str]) -> set[str]:
        """Which of ``digests`` some row still refers to (the ``blob_refs`` view)."""
        if not digests:
            return set()
        marks = ",".join("?" * len(digests))
        rows = await self.db.fetchall(f"SELECT DISTINCT digest FROM blob_refs WHERE digest IN ({marks})", digests)
        return {r[0] for r in rows}

    async def collect_garbage(self, *, grace_seconds: float = 3600.0) -> list[str]:
        """Delete unreferenced blobs: files older than ``grace_seconds`` (0 only when nothing is in
        flight), inline rows at once (committed with the row naming it, or on PostgreSQL ahead of it
        and checked again in its transaction: :meth:`.InlineBlobs.collect`), cache copies."""
        removed = await self.blobs.collect_garbage(self.referenced, grace_seconds=grace_seconds)
        removed += await self.inline.collect()
        await asyncio.to_thread(self.blobs.clear_cache, grace_seconds)
        if removed:
            log.info("collected %d unreferenced blobs", len(removed))
        return removed
