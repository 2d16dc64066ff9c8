"""The node's SQLite database: one writer connection, two reader connections, explicit transactions.

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
    second, ``query_only`` connection (or, for a key lookup, a third on the loop's thread: below): in
    WAL mode it sees the last committed snapshot and never waits for the writer. A transaction opened while the same task holds one (which would wait for
    itself, and every write of the node with it) is refused with :class:`StoreError`; pass the
    ``tx`` down instead: every write API takes an optional ``tx``. That transaction holder (and the
    cancel-safe BEGIN/COMMIT/ROLLBACK) is :class:`node.store.sql_common.WriterDatabase`, shared with
    the PostgreSQL backend; this module gives it SQLite's connections, PRAGMAs and ``BEGIN IMMEDIATE``.

Reads outside a transaction, by what they read (the rule each role module follows, query by query):
    A read of the rows a primary or unique key names — one inbox row by (document, unit), a received
    envelope, a peer, a draft, a link by message id — is :meth:`Database.lookup` / ``lookup_one``: it
    runs on the event loop's thread, on a third, ``query_only`` connection of its own. A point read
    in the page cache takes microseconds, less than handing it to the reader's thread and waking
    the loop when it comes back (those hand-overs were 11–15 % of the GIL samples of a process
    hosting 54 nodes in bench/network.py, ``get_inbox`` before each 签收 the largest). In WAL mode it
    sees the last committed snapshot, as the reader does, and never waits for the writer; it never
    waits at all (``busy_timeout=0``): should SQLite answer "busy" (a checkpoint truncating the WAL,
    a WAL being recovered), the read is made again on the reader's thread, which may wait. Anything
    that scans, counts, groups, pages or lists — however small it is today — is ``fetchall`` /
    ``fetchone`` on the reader's thread, so that a table grown large never holds the loop.

Statements inside a transaction:
    BEGIN IMMEDIATE (which may wait ``busy_timeout`` for another process), COMMIT (the fsync) and
    ROLLBACK go to the writer's aiosqlite thread; the statements between them run on the event
    loop's thread, directly on the same sqlite3 connection. Once BEGIN IMMEDIATE has returned the
    write lock is ours, so no statement waits for another writer, and one INSERT or UPDATE of a
    transaction is tens of microseconds in the page cache — less than the hand-over to a thread and
    back (a queue, a wake-up, ``call_soon_threadsafe``), which py-spy put at a fifth of the GIL time
    of a process hosting 54 nodes (bench/network.py). The connection is never used by two threads
    at once: the transaction holds the writer's lock, and its statements run only after BEGIN came
    back from the thread, which serves its calls in order. Reads outside a transaction stay on the
    reader's thread (or, a key's rows, on the loop's own lookup connection: below). A transaction opened with
    ``offload=True`` (housekeeping's purges and garbage collection, migrations: statements that may
    scan or change many rows) runs its statements on the writer's thread too
    (:class:`OffloadedTransaction`), so that the loop is not held for the length of a scan.

Times are stored as fixed-width UTC ISO-8601 strings (``2025-03-01T08:00:00.000000Z``): they sort
as text exactly as they sort as times, so range filters and indexes work on them directly, and a
person reading the database with ``sqlite3`` sees dates rather than epoch numbers
(:func:`node.store.sql_common.to_db_time`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from node.errors import StoreError, StoreSqliteTooOld
from node.store.sql_common import WriterDatabase, WriterTransaction, from_db_time, to_db_time

# The time text is the two backends' (node.store.sql_common); the role modules take it from here.
__all__ = ["Database", "SqliteTransaction", "from_db_time", "to_db_time"]

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
# The loop's own connection for key lookups (Database.lookup): never waits; "busy" sends the read to the reader.
_LOOKUP_PRAGMAS = (
    "PRAGMA busy_timeout=0",
    "PRAGMA query_only=ON",
)


class SqliteTransaction(WriterTransaction):
    """One open write transaction. Statements run on the writer connection, in order, on the calling
    (event loop's) thread: see "Statements inside a transaction" above."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        return self._conn.execute(sql, params).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return self._conn.executemany(sql, rows).rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()


class OffloadedTransaction(SqliteTransaction):
    """A transaction whose statements may scan or change many rows (``transaction(offload=True)``:
    housekeeping, migrations): they run on the writer's aiosqlite thread, as BEGIN and COMMIT do, so
    the event loop keeps serving peers and clerks meanwhile."""

    def __init__(self, conn: aiosqlite.Connection) -> None:  # type: ignore[override]
        WriterTransaction.__init__(self)
        self._async = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self._async.execute(sql, params)).rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return (await self._async.executemany(sql, rows)).rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return list(await self._async.execute_fetchall(sql, params))


class Database(WriterDatabase[SqliteTransaction]):
    """The writer and reader connections of one node database file (transactions:
    :class:`node.store.sql_common.WriterDatabase`)."""

    # BEGIN IMMEDIATE: the write lock up front, so another process waits busy_timeout instead of
    # failing half-way through the transaction.
    BEGIN = ("BEGIN IMMEDIATE",)
    # No transaction open (BEGIN never ran), or SQLite already rolled back (SQLITE_FULL).
    ROLLBACK_ERRORS = (sqlite3.OperationalError,)

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection,
                 writer_connection: sqlite3.Connection, looker: sqlite3.Connection) -> None:
        super().__init__(writer)
        self.path = path
        self._writer: aiosqlite.Connection = writer
        self._writer_connection = writer_connection  # the same connection, for statements inside a transaction
        self._reader = reader
        self._looker = looker  # key lookups, on the event loop's thread (module docstring)
        self.lookups_deferred = 0  # lookups SQLite found busy, made again on the reader's thread

    @classmethod
    async def open(cls, path: str | Path) -> Database:
        if sqlite3.sqlite_version_info < MIN_SQLITE:  # refused before the first 签收 fails on it
            raise StoreSqliteTooOld(
                f"this Python's SQLite is {sqlite3.sqlite_version}; gwx needs SQLite "
                f"{'.'.join(map(str, MIN_SQLITE))} or newer (Debian 12, or a Python built with a newer SQLite)",
                version=sqlite3.sqlite_version, needed=".".join(map(str, MIN_SQLITE)))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer, writer_connection = await _connect(path, _WRITER_PRAGMAS)
        try:
            mode = await writer.execute_fetchall("PRAGMA journal_mode")
            if mode[0][0].lower() != "wal":
                raise StoreError("the database refused WAL mode", path=str(path), mode=mode[0][0])
            reader, _ = await _connect(path, _READER_PRAGMAS)
        except BaseException:
            await writer.close()
            raise
        try:
            looker = _lookup_connection(path)
        except BaseException:
            await reader.close()
            await writer.close()
            raise
        return cls(path, writer, reader, writer_connection, looker)

    async def close(self) -> None:
        async with self._lock:
            try:
                # Fold the WAL back into the main file so a cleanly stopped node leaves one file.
                await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._looker.close()
                await self._reader.close()
                await self._writer.close()

    def _new_transaction(self, offload: bool = False) -> SqliteTransaction:
        return OffloadedTransaction(self._writer) if offload else SqliteTransaction(self._writer_connection)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Read the last committed state (reader connection, never blocked by the writer)."""
        return list(await self._reader.execute_fetchall(sql, params))

    async def lookup(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows a key names, read on the calling (event loop's) thread: see "Reads outside a
        transaction" above. The last committed state, as :meth:`fetchall` reads it."""
        try:
            return self._looker.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            self.lookups_deferred += 1
            return await self.fetchall(sql, params)

    async def pragma(self, name: str) -> Any:
        """The writer connection's value of a PRAGMA (for status output and tests)."""
        rows = await self._writer.execute_fetchall(f"PRAGMA {name}")
        return rows[0][0] if rows else None


def _lookup_connection(path: Path) -> sqlite3.Connection:
    """The connection :meth:`Database.lookup` reads through on the loop's thread (autocommit: each
    statement reads the last committed snapshot)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in _LOOKUP_PRAGMAS:
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


async def _connect(path: Path, pragmas: Iterable[str]) -> tuple[aiosqlite.Connection, sqlite3.Connection]:
    """An aiosqlite connection (its own thread) and the sqlite3 connection it wraps, made in that
    thread; ``check_same_thread=False`` lets a transaction's statements run on the event loop's
    thread while that thread waits (:class:`SqliteTransaction`)."""
    made: list[sqlite3.Connection] = []

    def connector() -> sqlite3.Connection:
        # isolation_level=None: no implicit BEGINs from the sqlite3 module; we issue BEGIN/COMMIT.
        made.append(sqlite3.connect(str(path), isolation_level=None, check_same_thread=False))
        return made[-1]

    conn = await aiosqlite.Connection(connector, iter_chunk_size=64)
    try:
        conn.row_factory = sqlite3.Row
        for pragma in pragmas:
            await conn.execute(pragma)
    except BaseException:
        await conn.close()
        raise
    return conn, made[0]
