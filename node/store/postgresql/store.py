"""The node's store on PostgreSQL: rows in a PostgreSQL database, bytes in the blob directory.

:class:`Store` is the SQLite backend's :class:`node.store.sqlite.store.Store` (the same roles, group
commit and crash recovery) opened over a :class:`.db.Database`: only where the rows live changes —
and the group commit writes its inline blobs before it takes the writers' lock (:mod:`.inline_ahead`).
The blob store stays a directory (``data_dir/blobs``): several workers of one node share it (a
network file system, or one machine), as they share the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from node.errors import StoreError
from node.store.blobs import BlobStore
from node.store.postgresql.db import Database, SideConnection
from node.store.postgresql.inline_ahead import AheadCommitter, InlineBlobsAhead
from node.store.postgresql.leases import (
    LeasedAdapterOutbox,
    LeasedDrafts,
    LeasedMessages,
    LeasedQueue,
    _Lease,
    hold_name,
    worker_name,
)
from node.store.postgresql.ledger import PgLedger
from node.store.postgresql.schema import migrate
from node.store.sqlite.store import BLOB_DIR
from node.store.sqlite.store import Store as SqliteStore


def _utc_now() -> datetime:
    return datetime.now(UTC)


DEFAULT_LEASE_SECONDS = 30.0


class _PgReader:
    """A blocking ``digest → inline bytes`` for :attr:`BlobStore.inline` (one connection, locked)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    CONNECT_TIMEOUT = 10  # seconds: a reader thread waits no longer for an unreachable server

    def _fetch(self, sql: str, digest: str) -> tuple | None:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self.CONNECT_TIMEOUT)
                return self._conn.execute(sql, (digest,)).fetchone()
            except psycopg.Error as exc:
                raise StoreError(f"cannot read blob {digest} from the database: {exc}", code="STORE_BLOB_UNREADABLE",
                                 digest=digest) from None

    def __call__(self, digest: str) -> bytes | None:
        row = self._fetch("SELECT data FROM inline_blobs WHERE digest = %s", digest)
        return bytes(row[0]) if row else None

    def size(self, digest: str) -> int | None:
        row = self._fetch("SELECT size FROM inline_blobs WHERE digest = %s", digest)
        return int(row[0]) if row else None

    def has(self, digest: str) -> bool:
        return self._fetch("SELECT 1 FROM inline_blobs WHERE digest = %s", digest) is not None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class Store(SqliteStore):
    """A node's store whose rows are in PostgreSQL (``dsn``) and whose blobs are under ``data_dir``;
    its queue, received envelopes and adapter outbox rows are claimed with leases (:mod:`.leases`), so
    several workers of one node may share the database."""

    # Another worker's blob written a moment ago may have no committed row yet: recovery leaves temp
    # files and unreferenced blobs younger than this (an envelope is written and committed in seconds).
    SHARED_BLOBS_GRACE_SECONDS = 3600.0

    def __init__(self, db: Database, blobs: BlobStore, clock: Callable[[], datetime], max_batch: int,  # type: ignore[override]
                 node_id: str | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS, worker: str = "") -> None:
        super().__init__(db, blobs, clock, max_batch, node_id)  # type: ignore[arg-type]
        self.worker = worker_name(worker)
        self.lease = _Lease(clock, lease_seconds, self.worker, SideConnection(db.dsn))
        self.queue = LeasedQueue(db, self.audit, clock, self.lease)
        self.messages = LeasedMessages(db, self.audit, clock, self.lease)
        self.drafts = LeasedDrafts(db, node_id, self.lease)
        self.ledger = PgLedger(db)  # type: ignore[arg-type]
        self.adapter_outbox = LeasedAdapterOutbox(db, self.audit, clock, self.lease)
        self.inline = InlineBlobsAhead(db)  # written before the writers' lock is taken
        self.committer = AheadCommitter(db, self.messages, self.queue, max_batch=max_batch,  # type: ignore[arg-type]
                                        inline=self.inline)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self.lease.side.close()  # type: ignore[union-attr]

    def _inline_reader(self) -> _PgReader:  # type: ignore[override]
        return _PgReader(self.db.dsn)

    @classmethod
    async def open(cls, data_dir: str | Path, *, dsn: str = "", clock: Callable[[], datetime] = _utc_now,  # type: ignore[override]
                   max_blob_size: int | None = None, recover: bool = True, max_batch: int = 512,
                   blob_threads: int = 32, node_id: str | None = None,
                   lease_seconds: float = DEFAULT_LEASE_SECONDS, worker: str = "") -> Store:
        data_dir = Path(data_dir)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = await Database.open(dsn, data_dir)

        async def prepare() -> None:
            if recover:  # a worker (a tool opening a running node's store claims nothing, holds no name)
                await hold_name(db, worker_name(worker))
            await migrate(db, clock())

        return await cls._opened(
            db, prepare, lambda: BlobStore(data_dir / BLOB_DIR, max_size=max_blob_size, threads=blob_threads),
            lambda blobs: cls(db, blobs, clock, max_batch, node_id, lease_seconds, worker),
            recover=recover)
