"""What the two SQL backends share, said once: the writer's transactions, the migration loop, the time text.

:mod:`node.store.sqlite` and :mod:`node.store.postgresql` differ in their drivers and dialects, not in
how a node writes. This module is the dialect-neutral half both build on; it imports no driver (each
backend gives its connection and its errors) and is, like them, behind the store's line (no caller
outside ``node.store`` imports it).

- :class:`WriterDatabase`: one writer connection behind an :class:`asyncio.Lock`; ``transaction()``
  begins with the backend's statements (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``BEGIN`` and the
  writers' advisory lock), commits on success, rolls back on any exception, refuses a transaction
  opened inside another of the same task, counts commits and tells the audit log's watchers.
- :class:`WriterTransaction`: what an open transaction offers besides its statements — ``send`` /
  ``send_many``, a write whose answer the caller does not wait for (PostgreSQL sends it in pipeline
  mode and reads the answer with the next statement's; SQLite runs it at once).
- :func:`to_the_end`: a BEGIN, COMMIT or ROLLBACK runs to its end however often its caller is
  cancelled, so the writer is never left in a state nobody knows.
- :func:`apply_migrations`: every missing migration, one transaction each, in order; a database
  migrated by a newer gwx refused with :class:`StoreSchemaTooNew`.
- :func:`to_db_time` / :func:`from_db_time`: times as fixed-width UTC text (both backends store text).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from node.errors import StoreError, StoreSchemaTooNew

log = logging.getLogger("gwx.store")


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


class Executes(Protocol):
    """A driver connection as the writer uses it: ``await conn.execute(sql)``."""

    def execute(self, sql: str) -> Awaitable[Any]: ...


async def to_the_end(conn: Executes, sql: str) -> None:
    """Run ``sql`` to its end even if the caller is cancelled meanwhile.

    A driver runs a statement it has been given whatever happens to the awaiting task; without this a
    cancel during BEGIN or COMMIT would leave the writer in a state nobody knows (a transaction open
    with the lock released, or a commit the caller believes failed). A cancelled caller waits for the
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


class Reads:
    """``fetchone`` as the first row of the backend's ``fetchall`` (a transaction's, or the database's
    last committed state).

    ``lookup`` / ``lookup_one``: a read whose rows a primary or unique key names (one row, or the
    few rows of one key), which may be served where the caller stands — SQLite's database answers
    it on the event loop's thread (:meth:`node.store.sqlite.db.Database.lookup`); elsewhere it is
    ``fetchall``. A read that scans, counts, groups or pages is ``fetchall``/``fetchone``."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def lookup(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.fetchall(sql, params)

    async def lookup_one(self, sql: str, params: Sequence[Any] = ()) -> Any | None:
        rows = await self.lookup(sql, params)
        return rows[0] if rows else None


class WriterTransaction(Reads):
    """What every backend's open write transaction carries besides its statements."""

    def __init__(self) -> None:
        # (seq, hash) of the newest audit event, loaded lazily by node.store.sqlite.audit and kept for the
        # rest of the transaction so a batch of appends costs one read.
        self.audit_head: tuple[int, str] | None = None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        raise NotImplementedError

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        raise NotImplementedError

    async def send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """``execute`` whose answer (its row count) the caller does not wait for: a backend may send it and
        read the answer with a later statement's (PostgreSQL's pipeline mode), so an error it meets is
        raised there — within the same savepoint's work, or at COMMIT at the latest, never after it.
        For a write whose error nobody catches on its own (a key violation is the transaction's)."""
        await self.execute(sql, params)

    async def send_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """``executemany`` as :meth:`send` runs ``execute``."""
        await self.executemany(sql, rows)


Tx = TypeVar("Tx", bound=WriterTransaction)


class WriterDatabase(Reads, Generic[Tx]):
    """The writer side of a backend's database: one writer connection, one transaction at a time.

    A backend sets :attr:`BEGIN` (the statements that open a write transaction), :attr:`ROLLBACK_ERRORS`
    (what its driver raises for a ROLLBACK with nothing to undo) and :meth:`_new_transaction`, and
    reads the last committed state (``fetchall``) its own way."""

    BEGIN: tuple[str, ...] = ("BEGIN",)
    ROLLBACK_ERRORS: tuple[type[BaseException], ...] = ()

    def __init__(self, writer: Executes) -> None:
        self._writer = writer
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None  # the task whose transaction is open
        self.commits = 0  # how many transactions committed (for figures and tests of batching)
        self._audit_watchers: list[Callable[[int], None]] = []

    def _new_transaction(self, offload: bool = False) -> Tx:
        raise NotImplementedError

    @asynccontextmanager
    async def transaction(self, *, offload: bool = False, begin: tuple[str, ...] | None = None) -> AsyncIterator[Tx]:
        """``async with db.transaction() as tx:`` — commit on success, roll back on any exception.
        ``offload``: statements that may scan or change many rows (housekeeping, migrations) — a
        backend that runs a transaction's statements on the event loop's thread (SQLite) runs these
        on its writer's thread instead, so the node keeps serving meanwhile. ``begin``: other
        statements than :attr:`BEGIN` to open it with (PostgreSQL's blob rows written without the
        writers' lock: :mod:`node.store.postgresql.inline_ahead`)."""
        if self._holder is not None and self._holder is asyncio.current_task():
            # Waiting for a lock this very task holds would stop every write of the node for ever.
            raise StoreError("a transaction was opened inside another of the same task (or inside a "
                             "group-committed work); pass the transaction given down instead")
        async with self._lock:
            self._holder = asyncio.current_task()
            try:
                async with self._begun(offload, begin) as tx:
                    yield tx
            finally:
                self._holder = None

    @asynccontextmanager
    async def maybe_transaction(self, tx: Tx | None) -> AsyncIterator[Tx]:
        """Use the caller's transaction if given, else open (and commit) one of our own."""
        if tx is not None:
            yield tx
            return
        async with self.transaction() as own:
            yield own

    @asynccontextmanager
    async def _begun(self, offload: bool = False, begin: tuple[str, ...] | None = None) -> AsyncIterator[Tx]:
        """BEGIN … COMMIT (or ROLLBACK) on the writer, the lock held by the caller."""
        try:
            for statement in self.BEGIN if begin is None else begin:
                await to_the_end(self._writer, statement)
        except BaseException:
            await self._rollback()  # a BEGIN that went through before a cancel is undone
            raise
        tx = self._new_transaction(offload)
        try:
            yield tx
        except BaseException:
            await self._rollback()
            raise
        try:
            await to_the_end(self._writer, "COMMIT")
        except asyncio.CancelledError:
            self._committed(tx)  # the COMMIT ran to its end: committed; the caller is cancelled all the same
            raise
        except BaseException:
            await self._rollback()
            raise
        self._committed(tx)

    async def _rollback(self) -> None:
        try:
            await to_the_end(self._writer, "ROLLBACK")
        except self.ROLLBACK_ERRORS:
            # No transaction open (BEGIN never ran), or the database already rolled back.
            pass

    def watch_audit(self, callback: Callable[[int], None]) -> Callable[[], None]:
        """Call ``callback(seq)`` after every commit that appended audit events (``seq``: the newest),
        on the event loop, in this process; returns what stops it. The one place that says "the audit
        log grew": its followers (``adapters.outbox``) wake on it instead of polling."""
        self._audit_watchers.append(callback)
        return lambda: self._audit_watchers.remove(callback) if callback in self._audit_watchers else None

    def _committed(self, tx: Tx) -> None:
        self.commits += 1
        if tx.audit_head is None:  # no audit event appended in this transaction
            return
        for callback in list(self._audit_watchers):
            try:
                callback(tx.audit_head[0])
            except Exception:  # a follower's bug must not look like a failed commit
                log.exception("an audit watcher failed")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


async def apply_migrations(db: WriterDatabase[Any], now: datetime, migrations: Sequence[Migration], *,
                           prepare: Sequence[str], where: str,
                           current_version: Callable[[], Awaitable[int]],
                           ddl: Callable[[str], str] = lambda statement: statement) -> list[int]:
    """Bring the database to the newest schema; returns the versions applied (empty if none).

    ``prepare`` (the ``schema_version`` table in the backend's words, and what else must exist first)
    runs in a transaction of its own; each statement of a migration is said through ``ddl``. Every
    migration whose version is missing from ``schema_version`` is applied, in order — not only those
    above the newest applied: branches merged out of order (a database already at 11 from one branch,
    10 merged later from another) must still get the one that landed late. The versions applied are
    read inside each step's transaction, so two processes opening a fresh database apply it once.
    ``where`` names the database in the error refusing one a newer gwx migrated."""
    known = migrations[-1].version if migrations else 0

    def too_new(version: int) -> StoreSchemaTooNew:
        return StoreSchemaTooNew(
            f"the database is at schema version {version}, newer than the {known} this gwx knows; upgrade gwx",
            path=where, version=version, supported=known)

    applied: list[int] = []
    async with db.transaction(offload=True) as tx:
        for statement in prepare:
            await tx.execute(statement)
    for migration in migrations:
        async with db.transaction(offload=True) as tx:
            done = {int(r[0]) for r in await tx.fetchall("SELECT version FROM schema_version")}
            have = max(done, default=0)
            if have > known:
                raise too_new(have)
            if migration.version in done:
                continue
            for statement in migration.statements:
                await tx.execute(ddl(statement))
            await tx.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                             (migration.version, migration.description, to_db_time(now)))
            applied.append(migration.version)
    if not applied:
        version = await current_version()
        if version > known:
            raise too_new(version)
    return applied
