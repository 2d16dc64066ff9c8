"""The node's PostgreSQL database: one writer connection, one reader connection, explicit transactions
(and :class:`SideConnection`, where a worker renews its leases behind none of its writes).

The same surface as :class:`node.store.sqlite.db.Database` (``transaction``, ``maybe_transaction``,
``fetchall``/``fetchone`` on the last committed state, ``watch_audit``, ``commits``), so the role
modules of the SQLite backend run over it unchanged; each statement is said in PostgreSQL's dialect
by :func:`.dialect.translate`. The transaction holder itself is the one both backends share,
:class:`node.store.sql_common.WriterDatabase`; this module gives it psycopg's connections and its BEGIN.

Writes are serialised as SQLite serialises them: a transaction begins by taking a transaction-level
advisory lock (:data:`WRITER_LOCK`), so the writes of every process using the database — several
workers of one node, a ``gwx`` command — run one after the other, and a decision read inside a
transaction (the audit chain's head, a compare-and-set on a recipient row) cannot be raced by another
process. Inside a process an :class:`asyncio.Lock` keeps coroutines from interleaving statements of
different transactions on the one writer connection, as in the SQLite backend.

The lock is held for the transaction's round trips, so a round trip saved is the other workers' turn
sooner: what needs no answer (a group commit's ``SAVEPOINT``, the rows written with ``send`` /
``send_many``: audit events, drafts, links, queue and received rows) is sent in psycopg's pipeline
mode and answered with the next statement that waits — a work's by its ``RELEASE``, so an error is
still its own — and everything is answered before COMMIT (:class:`PgTransaction`).

Durability: PostgreSQL's defaults (``fsync=on``, ``synchronous_commit=on``) flush the WAL before a
COMMIT returns, which is what signing a transport receipt after the commit needs; :meth:`Database.open`
refuses a server where either is off.

Rows come back as :class:`Row` (by index and by column name, like ``sqlite3.Row``); numbers that
PostgreSQL returns as ``numeric`` (a ``SUM`` of integers) come back as ``int``.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from node.errors import StoreError
from node.store.postgresql.dialect import translate
from node.store.sql_common import WriterDatabase, WriterTransaction, to_the_end

# The key of the advisory lock every write transaction holds (any fixed number: the database is the node's).
WRITER_LOCK = 0x67_77_78_00  # "gwx\0"
CONNECT_TIMEOUT_S = 10
SIDE_LOCK_TIMEOUT_MS = 250  # how long a lease renewal waits on a row lock (:class:`SideConnection`)
WRITER_SEND_BUFFER = 8 << 20  # bytes asked for the writer's socket send buffer (the kernel caps it)


class Row(tuple):
    """A result row read by position or by column name (``row[0]``, ``row["seq"]``), like sqlite3.Row."""

    __slots__ = ()
    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: psycopg.AsyncCursor[Any]) -> Callable[[Sequence[Any]], Row]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    row_type = type("Row", (Row,), {"__slots__": (), "_names": names})

    def make(values: Sequence[Any]) -> Row:
        return row_type(_plain(v) for v in values)

    return make


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    # SQLite keeps a truth value as 0 or 1, and so do the columns the schema declares for it.
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


# A savepoint's statements: sent in pipeline mode, answered with the next statement's round trip.
_SAVEPOINT = re.compile(r"\s*(SAVEPOINT|RELEASE)\s+\w+\s*$", re.IGNORECASE)
# An INSERT of one row of placeholders (as translated): sent as one statement of many rows.
_VALUES = re.compile(r"(\s*INSERT\s+INTO\s.*?\bVALUES\s*)(\((?:\s*%s\s*,)*\s*%s\s*\))(.*)", re.IGNORECASE | re.DOTALL)
_MAX_PARAMS = 30_000  # a statement's parameters at most (the protocol allows 65,535)


class PgTransaction(WriterTransaction):
    """One open write transaction. Statements run on the writer connection, in order.

    What needs no answer is only sent (psycopg's pipeline mode) and answered with the next statement
    that waits for one, so it costs the writer's turn (the advisory lock held) no round trip of its
    own: a group commit's ``SAVEPOINT`` before each work, and :meth:`send` / :meth:`send_many` (the
    audit log's rows, a draft, its outgoing links, queue rows, received rows). A ``RELEASE`` waits for the answers of its work's statements sent before it — an error
    one met is raised there, the work's, and undoes that work alone — and is itself answered with
    the next; the database calls :meth:`settle` before COMMIT, so nothing is committed unanswered."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        super().__init__()
        self._conn = conn
        self._pipeline: psycopg.AsyncPipeline | None = None
        self._leave: Any = None  # what leaves pipeline mode (the connection's context manager)
        self._sent = 0  # statements sent whose answers are not read yet
        # Reads sent whose rows are looked at before COMMIT, not at once (:meth:`send_checked`).
        self._checks: list[tuple[psycopg.AsyncCursor[Any], Callable[[list[Row]], Awaitable[None]]]] = []
        self.round_trips = 0  # waits for the server (docs/performance.md; test_postgresql checks a batch's)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed (0 for a savepoint's)."""
        async with self._first_error():
            if not params and _SAVEPOINT.match(sql):
                if sql.split()[0].upper() == "RELEASE" and self._sent:
                    await self._answered()  # the work's own errors are the work's
                await self._send()
                await self._conn.execute(sql)
                return 0
            cursor = await self._conn.execute(translate(sql), _params(params))
            await self._answered()
            return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        async with self._first_error(), self._conn.cursor() as cursor:
            await cursor.executemany(translate(sql), [_params(r) for r in rows])
            await self._answered()
            return cursor.rowcount

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """``execute`` without waiting for its answer (read with the next statement's)."""
        async with self._first_error():
            await self._send()
            await self._conn.execute(translate(sql), _params(params))

    async def send_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """``executemany`` without waiting for its answer (read with the next statement's).

        An ``INSERT … VALUES (?, …)`` of several rows is sent as one statement of many rows
        (:func:`_multi_row`): psycopg's ``executemany`` in pipeline mode waits for the event loop
        once a row, and on a node busy with TLS and envelope checks each wait is a lap of several
        ms, all under the writers' lock (docs/performance.md, "Why the acceptor's group commit …")."""
        params = [_params(r) for r in rows]
        statement = translate(sql)
        many = _VALUES.match(statement) if len(params) > 1 else None
        async with self._first_error():
            if many is None:
                await self._send()
                async with self._conn.cursor() as cursor:
                    await cursor.executemany(statement, params)
                return
            head, group, tail = many.groups()
            step = max(1, _MAX_PARAMS // len(params[0]))
            for start in range(0, len(params), step):
                chunk = params[start:start + step]
                await self._send()
                await self._conn.execute(f"{head}{','.join([group] * len(chunk))}{tail}",
                                         [value for row in chunk for value in row], prepare=False)

    async def send_checked(self, sql: str, params: Sequence[Any],
                           then: Callable[[list[Row]], Awaitable[None]]) -> None:
        """Send a read whose rows are needed only before COMMIT: ``then(rows)`` runs at the settle,
        every answer in (so it costs no wait of its own), and may write more, answered before COMMIT
        too. The inline blobs written ahead of the lock are checked so (:mod:`.inline_ahead`)."""
        async with self._first_error():
            await self._send()
            cursor = await self._conn.execute(translate(sql), _params(params))
        self._checks.append((cursor, then))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._first_error():
            cursor = await self._conn.execute(translate(sql), _params(params))
            await self._answered()
            return await cursor.fetchall() if cursor.description else []

    @asynccontextmanager
    async def _first_error(self) -> AsyncIterator[None]:
        """Raise the first error the server answered with, and leave the connection clean behind it.

        In pipeline mode a failed statement makes the server skip the rest up to the next sync, and
        psycopg raises an error as it reads its answer — at whichever call reads it: the statement's
        cause (a duplicate key) at one, ``PipelineAborted`` for the skipped ones at the next. So
        pipeline mode is left here at once, the answers left behind read and dropped, and the cause
        is what the caller meets; a ``ROLLBACK TO`` then runs on a connection owing no answers."""
        try:
            yield
        except psycopg.Error:
            await self._leave_pipeline(failed=True)
            raise

    async def _send(self) -> None:
        if self._pipeline is None:
            self._leave = self._conn.pipeline()
            self._pipeline = await self._leave.__aenter__()
        self._sent += 1

    async def _answered(self) -> None:
        """Wait for the answers to everything sent (in pipeline mode: one sync for all of them)."""
        self.round_trips += 1
        if self._pipeline is not None:
            self._sent = 0
            await self._pipeline.sync()

    async def settle(self, failed: bool = False) -> None:
        """Leave pipeline mode, every answer read (raising the first error met), before COMMIT or ROLLBACK;
        ``failed``: the transaction is being rolled back anyway, an error here is not news.
        The reads of :meth:`send_checked` are looked at then, and what they write settled in turn."""
        while True:
            await self._leave_pipeline(failed)
            checks, self._checks = self._checks, []
            if failed or not checks:
                return
            for cursor, then in checks:
                await then(await cursor.fetchall() if cursor.description else [])

    async def _leave_pipeline(self, failed: bool) -> None:
        leave, self._pipeline, self._leave = self._leave, None, None
        if leave is None:
            return
        self.round_trips += bool(self._sent)
        self._sent = 0
        try:
            await to_the_end(_Leaving(leave), "")  # a cancel meanwhile must not leave the writer half in it
        except psycopg.Error:
            if not failed:
                raise


class _Leaving:
    """Leaving pipeline mode as :func:`~node.store.sql_common.to_the_end` runs a statement: to its end."""

    def __init__(self, leave: Any) -> None:
        self._leave = leave

    def execute(self, sql: str) -> Awaitable[Any]:
        return self._leave.__aexit__(None, None, None)


class Database(WriterDatabase[PgTransaction]):
    """The writer and reader connections of one node's PostgreSQL database (transactions:
    :class:`node.store.sql_common.WriterDatabase`, as SQLite's)."""

    # The advisory lock serialises the writers of every process sharing the database.
    BEGIN = ("BEGIN", f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")
    ROLLBACK_ERRORS = (psycopg.Error,)

    def __init__(self, dsn: str, beside: Path, writer: psycopg.AsyncConnection[Any],
                 reader: psycopg.AsyncConnection[Any]) -> None:
        super().__init__(writer)
        self.dsn = dsn
        # Where the SQLite backend's file would be: the files kept beside the database (the webhooks'
        # change mark) are its siblings, in the node's data directory that all its workers share.
        self.path = beside / "postgresql"
        self._writer: psycopg.AsyncConnection[Any] = writer
        self._reader = reader

    @classmethod
    async def open(cls, dsn: str, beside: Path) -> Database:
        writer = await connect(dsn)
        try:
            _widen_send_buffer(writer)
            await _check_durable(writer, dsn)
            reader = await connect(dsn)
        except BaseException:
            await writer.close()
            raise
        return cls(dsn, beside, writer, reader)

    async def close(self) -> None:
        async with self._lock:
            try:
                await self._reader.close()
            finally:
                await self._writer.close()

    def _new_transaction(self, offload: bool = False) -> PgTransaction:  # statements already off the loop
        return PgTransaction(self._writer)

    @asynccontextmanager
    async def _begun(self, offload: bool = False, begin: tuple[str, ...] | None = None) -> AsyncIterator[PgTransaction]:
        """As :class:`WriterDatabase`'s, every statement sent answered before COMMIT (or ROLLBACK)."""
        async with super()._begun(offload, begin) as tx:
            try:
                yield tx
            except BaseException:
                await tx.settle(failed=True)
                raise
            await tx.settle()

    def unlocked_transaction(self) -> AbstractAsyncContextManager[PgTransaction]:
        """A write transaction that does not take the writers' lock (:data:`WRITER_LOCK`), so the other
        workers write meanwhile. Only for rows no decision reads and any writer may write twice: the
        inline blobs' (content-addressed, ``ON CONFLICT DO NOTHING``; :mod:`.inline_ahead`)."""
        return self.transaction(begin=("BEGIN",))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Read the last committed state (reader connection, never blocked by the writer)."""
        cursor = await self._reader.execute(translate(sql), _params(params))
        return await cursor.fetchall() if cursor.description else []

    async def fetchone_writer(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """One statement on the writer connection outside a transaction: what must live as long as the
        connection does (a session advisory lock)."""
        async with self._lock:
            cursor = await self._writer.execute(translate(sql), _params(params))
            return await cursor.fetchone()

    async def setting(self, name: str) -> str:
        """A server setting (``SHOW name``), for status output and tests."""
        cursor = await self._reader.execute(f"SHOW {name}")
        row = await cursor.fetchone()
        return str(row[0]) if row else ""


class SideConnection:
    """One more connection of the worker, for one-statement writes that must not wait behind its
    writers' lock nor flush the WAL: a worker's lease renewals (:mod:`.leases`). Renewed in a
    transaction of the writer, a lease waited behind the worker's own turns — every transaction
    queued before it in this process, then the advisory lock — and ran out meanwhile on a loaded
    machine, so another worker took the row and sent a webhook event a second time. Each statement
    here commits alone (autocommit: no advisory lock; it writes only rows this worker's lease names,
    guarded by their owner) and asynchronously (``synchronous_commit`` off: a renewal a server crash
    loses only ends a lease sooner). Opened at its first use; opened again after an error."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> tuple[int, list[Row]]:
        """(rows changed, rows returned) of one statement; a cancel meanwhile lets it end first."""
        return await asyncio.shield(asyncio.get_running_loop().create_task(self._run(sql, params)))

    async def _run(self, sql: str, params: Sequence[Any]) -> tuple[int, list[Row]]:
        async with self._lock:
            if self._conn is None:
                conn = await connect(self._dsn)
                try:
                    await conn.execute("SET synchronous_commit TO off")
                    # A renewal waits on a row lock briefly, then fails and is tried a third of a lease
                    # later: it takes no advisory lock, so it could meet this worker's own swap locking
                    # the same drafts in another order (a deadlock PostgreSQL would break after 1 s by
                    # aborting either, with the writers' lock held all along).
                    await conn.execute(f"SET lock_timeout TO {SIDE_LOCK_TIMEOUT_MS}")
                except BaseException:
                    await conn.close()
                    raise
                self._conn = conn
            try:
                cursor = await self._conn.execute(translate(sql), _params(params))
                return cursor.rowcount, (await cursor.fetchall() if cursor.description else [])
            except psycopg.Error:
                conn, self._conn = self._conn, None
                await conn.close()
                raise

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                conn, self._conn = self._conn, None
                await conn.close()


async def connect(dsn: str) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection (BEGIN and COMMIT are said explicitly, as in the SQLite backend)."""
    try:
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=_row_factory,
                                                     connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the PostgreSQL store: {str(exc).strip()}", dsn=safe_dsn(dsn)) from exc
    return conn


def _widen_send_buffer(conn: psycopg.AsyncConnection[Any]) -> None:
    """Let the writer's socket hold a group commit's rows (inline blobs: a few MB) at once.

    With the default buffer (~200 KB) the rows went out in steps of some tens of KB, each step one
    lap of the node's busy event loop, all under the writers' lock (docs/performance.md, "Why the
    acceptor's group commit …"). The kernel caps the size at ``net.core.wmem_max``."""
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WRITER_SEND_BUFFER)


async def _check_durable(conn: psycopg.AsyncConnection[Any], dsn: str) -> None:
    for name in ("fsync", "synchronous_commit"):
        cursor = await conn.execute(f"SHOW {name}")
        row = await cursor.fetchone()
        value = str(row[0]) if row else ""
        if value in ("off", "local"):
            raise StoreError(f"the PostgreSQL server has {name}={value}: a commit may be lost after we signed a "
                             f"receipt for it; set {name}=on", dsn=safe_dsn(dsn), setting=name, value=value)


def safe_dsn(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    return re.sub(r"(password\s*=\s*)\S+|(://[^:/@]+:)[^@]+@", lambda m: (m.group(1) or m.group(2)) + "***"
                  + ("" if m.group(1) else "@"), dsn)
