"""The node's SQLite database: one writer connection, one reader connection, explicit transactions.

Durability argument (why ``synchronous=FULL``):
    In WAL mode ``synchronous=NORMAL`` survives a process crash (kill -9) but not a power cut:
    commits sit in the WAL un-fsynced until the next checkpoint. A node acknowledges envelopes with
    *signed* transport receipts (non-repudiation), so a committed row must survive the machine
    losing power, or we would have signed for something we then lost. ``FULL`` fsyncs the WAL on
    every commit; group commit (:mod:`node.store.sqlite.group_commit`) amortises that one fsync over every
    envelope accepted in the same batch, which is what makes it affordable on the hot path.

Concurrency model:
    aiosqlite gives each connection its own thread and serialises calls on it. All writes go
    through :meth:`Database.transaction`, which holds an :class:`asyncio.Lock` (so coroutines never
    interleave statements of different transactions on the one writer connection) and starts with
    ``BEGIN IMMEDIATE`` (so the SQLite write lock is taken up front and another process, e.g. a CLI
    command, waits ``busy_timeout`` instead of failing half-way). Reads outside a transaction use a
    second, ``query_only`` connection: in WAL mode it sees the last committed snapshot and never
    waits for the writer. A transaction opened while the same task holds one (which would wait for
    itself, and every write of the node with it) is refused with :class:`StoreError`; pass the
    ``tx`` down instead: every write API takes an optional ``tx``.

Times are stored as fixed-width UTC ISO-8601 strings (``2025-03-01T08:00:00.000000Z``): they sort
as text exactly as they sort as times, so range filters and indexes work on them directly, and a
person reading the database with ``sqlite3`` sees dates rather than epoch numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from node.errors import StoreError, StoreSqliteTooOld

log = logging.getLogger("gwx.store")

BUSY_TIMEOUT_MS = 10_000
# UPDATE … RETURNING (the compare-and-set updates read their row back in one statement) came in 3.35.
MIN_SQLITE = (3, 35, 0)

_WRITER_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    # Checkpoint often enough that the WAL (read by every reader) stays small.
    "PRAGMA wal_autocheckpoint=1000",
)
_READER_PRAGMAS = (
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
    "PRAGMA query_only=ON",
)


def to_db_time(value: datetime) -> str:
    """A timezone-aware datetime as the fixed-width UTC text the database stores."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise StoreError("times given to the store must be timezone-aware datetimes", value=repr(value))
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_db_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    if len(text) == 27 and text[-1] == "Z":
        # The form to_db_time writes: fromisoformat reads it (its Z as UTC) some 30 times faster than
        # strptime, and every row listed or exported (a 台账 of 100,000 rows) passes here.
        return datetime.fromisoformat(text)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)  # anything else: its error


class SqliteTransaction:
    """One open write transaction. Statements run on the writer connection, in order."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        # (seq, hash) of the newest audit event, loaded lazily by node.store.sqlite.audit and kept for the
        # rest of the transaction so a batch of appends costs one read.
        self.audit_head: tuple[int, str] | None = None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        cursor = await self._conn.executemany(sql, rows)
        return cursor.rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._conn.execute_fetchall(sql, params)
        return rows[0] if rows else None


class Database:
    """The writer and reader connections of one node database file."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None  # the task whose transaction is open
        self.commits = 0  # how many transactions committed (for figures and tests of batching)
        self._audit_watchers: list[Callable[[int], None]] = []

    @classmethod
    async def open(cls, path: str | Path) -> Database:
        if sqlite3.sqlite_version_info < MIN_SQLITE:  # refused before the first 签收 fails on it
            raise StoreSqliteTooOld(
                f"this Python's SQLite is {sqlite3.sqlite_version}; gwx needs SQLite "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer (Debian 12, or a Python built with a newer SQLite)",
                version=sqlite3.sqlite_version, needed=".".join(map(str, MIN_SQLITE)))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _connect(path, _WRITER_PRAGMAS)
        try:
            mode = await writer.execute_fetchall("PRAGMA journal_mode")
            if mode[0][0].lower() != "wal":
                raise StoreError("the database refused WAL mode", path=str(path), mode=mode[0][0])
            reader = await _connect(path, _READER_PRAGMAS)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def close(self) -> None:
        async with self._lock:
            try:
                # Fold the WAL back into the main file so a cleanly stopped node leaves one file.
                await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                await self._reader.close()
                await self._writer.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """``async with db.transaction() as tx:`` — commit on success, roll back on any exception."""
        if self._holder is not None and self._holder is asyncio.current_task():
            # Waiting for a lock this very task holds would stop every write of the node for ever.
            raise StoreError("a transaction was opened inside another of the same task (or inside a "
                             "group-committed work); pass the transaction given down instead")
        async with self._lock:
            self._holder = asyncio.current_task()
            try:
                async with self._begun() as tx:
                    yield tx
            finally:
                self._holder = None

    @asynccontextmanager
    async def _begun(self) -> AsyncIterator[SqliteTransaction]:
        """BEGIN IMMEDIATE … COMMIT (or ROLLBACK) on the writer, the lock held by the caller."""
        try:
            await _to_the_end(self._writer, "BEGIN IMMEDIATE")
        except BaseException:
            await _rollback(self._writer)  # a BEGIN that went through before a cancel is undone
            raise
        tx = SqliteTransaction(self._writer)
        try:
            yield tx
        except BaseException:
            await _rollback(self._writer)
            raise
        try:
            await _to_the_end(self._writer, "COMMIT")
        except asyncio.CancelledError:
            self._committed(tx)  # the COMMIT ran to its end: committed; the caller is cancelled all the same
            raise
        except BaseException:
            await _rollback(self._writer)
            raise
        self._committed(tx)

    def watch_audit(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(seq)`` after every commit that appended audit events (``seq``: the newest),
        on the event loop, in this process; returns what stops it. The one place that says "the audit
        log grew": its followers (``adapters.outbox``) wake on it instead of polling."""
        self._audit_watchers.append(callback)
        return lambda: self._audit_watchers.remove(callback) if callback in self._audit_watchers else None

    def _committed(self, tx: SqliteTransaction) -> None:
        self.commits += 1
        if tx.audit_head is None:  # no audit event appended in this transaction
            return
        for callback in list(self._audit_watchers):
            try:
                callback(tx.audit_head[0])
            except Exception:  # a follower's bug must not look like a failed commit
                log.exception("an audit watcher failed")

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read the last committed state (reader connection, never blocked by the writer)."""
        return list(await self._reader.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = await self._reader.execute_fetchall(sql, params)
        return rows[0] if rows else None

    async def pragma(self, name: str) -> Any:
        """The writer connection's value of a PRAGMA (for status output and tests)."""
        rows = await self._writer.execute_fetchall(f"PRAGMA {name}")
        return rows[0][0] if rows else None

    @asynccontextmanager
    async def maybe_transaction(self, tx: SqliteTransaction | None) -> AsyncIterator[SqliteTransaction]:
        """Use the caller's transaction if given, else open (and commit) one of our own."""
        if tx is not None:
            yield tx
            return
        async with self.transaction() as own:
            yield own


async def _connect(path: Path, pragmas: Iterable[str]) -> aiosqlite.Connection:
    # isolation_level=None: no implicit BEGINs from the sqlite3 module; we issue BEGIN/COMMIT.
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in pragmas:
            await conn.execute(pragma)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _to_the_end(conn: aiosqlite.Connection, sql: str) -> None:
    """Run ``sql`` to its end even if the caller is cancelled meanwhile.

    aiosqlite runs a queued statement whatever happens to the awaiting task; without this a cancel
    during BEGIN or COMMIT would leave the writer in a state nobody knows (a transaction open with
    the lock released, or a commit the caller believes failed). A cancelled caller waits for the
    statement — shielded however many times it is cancelled meanwhile (``cancel_and_wait`` cancels
    again every 0.2 s) — then sees the cancellation with the connection in a known state.
    """
    statement = asyncio.ensure_future(conn.execute(sql))
    cancelled: asyncio.CancelledError | None = None
    while not statement.done():
        try:
            await asyncio.shield(statement)
        except asyncio.CancelledError as exc:
            if statement.cancelled():
                raise
            cancelled = exc
    if cancelled is not None:
        with contextlib.suppress(Exception):
            statement.result()  # its own error is not the caller's news: the cancel is
        raise cancelled
    statement.result()


async def _rollback(conn: aiosqlite.Connection) -> None:
    try:
        await _to_the_end(conn, "ROLLBACK")
    except sqlite3.OperationalError:
        # No transaction open (BEGIN never ran), or SQLite already rolled back (SQLITE_FULL).
        pass
