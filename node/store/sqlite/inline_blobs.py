"""Small blobs kept in the database for good (migration 20, issue 12 §2): no file, ever.

Accepting an envelope used to cost four fsyncs of its own before the receipt (envelope file and
payload file, each fsynced, then each fan-out directory), and a group commit then shared one WAL
fsync among the whole batch. A received envelope and its decrypted payload small enough (``[store]
inline_max_bytes``) get no file at all: their bytes go into ``inline_blobs`` in the same
transaction as the ``received`` row, so the group commit's one fsync makes the whole batch
durable, bytes included, and the receipt may go. (PostgreSQL commits them just before that
transaction, in one of their own without the writers' lock, and checks them in it:
:mod:`node.store.postgresql.inline_ahead`; both commits come before the receipt.) Nothing writes them out later (an earlier try,
the blob journal, wrote the files behind and that cost what the fsyncs saved: docs/performance.md).

Every reader reads them through :class:`~node.store.blobs.BlobStore` (``open``, ``read_bytes``,
``size_of``, ``exists``, ``verify_sync``), which asks :attr:`BlobStore.inline` — a blocking
``digest → bytes`` (:class:`SqliteReader` here: a read-only connection per thread; a locked psycopg
connection for PostgreSQL) — when a blob has no file. A reader that needs a file path (the clerk's
pages and downloads) gets a cache copy (``BlobStore.path_for``), never a blob of the store.

A row lives as long as a row of ``blob_refs`` names its digest: :meth:`InlineBlobs.collect`
deletes the others (the store's garbage collection). Backups carry them inside the database copy.
Large blobs (streamed, never whole in memory) keep the fsynced file path.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from node.errors import StoreError
from node.store.blobs import check_digest
from node.store.sqlite.db import Database, SqliteTransaction


class SqliteReader:
    """A blocking ``digest → inline bytes`` for :attr:`BlobStore.inline`: a read-only connection
    to the database at ``path`` per thread that asks, closed with the store. Each connection has its
    lock, held by a read and by :meth:`close`, so closing never pulls a connection out from under a
    query; a read after close is the store's typed error."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        self._conns: list[tuple[sqlite3.Connection, threading.Lock]] = []
        self._lock = threading.Lock()
        self._closed = False

    def _closed_error(self, digest: str) -> StoreError:
        return StoreError(f"cannot read blob {digest}: the store is closed", code="STORE_BLOB_UNREADABLE",
                          digest=digest)

    def _fetch(self, sql: str, digest: str) -> tuple | None:
        try:
            entry = getattr(self._local, "entry", None)
            if entry is None:
                conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
                entry = (conn, threading.Lock())
                with self._lock:
                    if self._closed:
                        conn.close()
                        raise self._closed_error(digest)
                    self._conns.append(entry)
                self._local.entry = entry
            conn, lock = entry
            with lock:
                if self._closed:
                    raise self._closed_error(digest)
                return conn.execute(sql, (digest,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read blob {digest} from {self._path}: {exc}", code="STORE_BLOB_UNREADABLE",
                             digest=digest) from None

    def __call__(self, digest: str) -> bytes | None:
        row = self._fetch("SELECT data FROM inline_blobs WHERE digest = ?", digest)
        return bytes(row[0]) if row else None

    def size(self, digest: str) -> int | None:
        row = self._fetch("SELECT size FROM inline_blobs WHERE digest = ?", digest)
        return int(row[0]) if row else None

    def has(self, digest: str) -> bool:
        return self._fetch("SELECT 1 FROM inline_blobs WHERE digest = ?", digest) is not None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn, lock in self._conns:
                with lock:  # a read in flight on another thread finishes first
                    conn.close()
            self._conns.clear()


class InlineBlobs:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, tx: SqliteTransaction, blobs: Sequence[tuple[str, bytes]]) -> None:
        """Inside ``tx``: keep ``(digest, bytes)`` pairs, durable with ``tx``."""
        if not blobs:
            return
        for digest, _ in blobs:
            check_digest(digest)
        await tx.send_many("INSERT INTO inline_blobs (digest, size, data) VALUES (?, ?, ?)"
                           " ON CONFLICT (digest) DO NOTHING", [(d, len(b), bytes(b)) for d, b in blobs])

    async def count(self) -> int:
        return int((await self._db.fetchall("SELECT COUNT(*) FROM inline_blobs"))[0][0])

    async def collect(self) -> list[str]:
        """Delete the rows no row of ``blob_refs`` names; returns their digests. No grace period is
        needed (nor any between workers): on SQLite an inline blob is committed with the row naming
        it; on PostgreSQL it is committed ahead, in a transaction of its own, and the locked
        transaction that writes the naming row checks it is still there and writes it again if a
        collection took it meanwhile (:mod:`node.store.postgresql.inline_ahead`)."""
        async with self._db.transaction(offload=True) as tx:
            rows = await tx.fetchall("SELECT digest FROM inline_blobs WHERE digest NOT IN"
                                     " (SELECT digest FROM blob_refs WHERE digest IS NOT NULL)")
            digests = [r[0] for r in rows]
            for start in range(0, len(digests), 500):
                chunk = digests[start:start + 500]
                await tx.execute(f"DELETE FROM inline_blobs WHERE digest IN ({','.join('?' * len(chunk))})", chunk)
        return digests
