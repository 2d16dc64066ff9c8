"""node.store.sql_common: what both SQL backends share behaves the same on each, on real databases.

The writer's statements run to their end however often the caller is cancelled, a transaction inside
another of the same task is refused, a failed transaction leaves nothing, and a database a newer gwx
migrated is refused — on SQLite (a file) and on PostgreSQL (tests/postgres_server.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from node.errors import StoreError, StoreSchemaTooNew
from node.store.postgresql import schema as pg_schema
from node.store.postgresql.db import Database as PgDatabase
from node.store.sql_common import to_the_end
from node.store.sqlite import migrations as sqlite_schema
from node.store.sqlite.db import Database as SqliteDatabase
from tests.support import T0

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """(name, how to open a migrated database of it)."""
    if request.param == "sqlite":
        yield "sqlite", lambda: SqliteDatabase.open(tmp_path / "gwx.db")
        return
    server = request.getfixturevalue("postgres_server")
    dsn = server.new_database(migrated=False)
    try:
        yield "postgresql", lambda: PgDatabase.open(dsn, tmp_path)
    finally:
        server.drop_database(dsn)


@asynccontextmanager
async def migrated(backend: tuple[str, Any]) -> AsyncIterator[Any]:
    name, opener = backend
    db = await opener()
    try:
        await (sqlite_schema if name == "sqlite" else pg_schema).migrate(db, T0)
        yield db
    finally:
        await db.close()


def test_a_statement_run_to_its_end_is_waited_for_however_often_the_caller_is_cancelled(backend) -> None:
    """cancel_and_wait cancels again every 0.2 s: the second cancel used to land on the unshielded
    wait and cancel the statement's task, so the caller went on (and the writer lock was released)
    while the statement still ran — the known state the function promises was not."""
    name, _ = backend
    slow = ("INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)"
            " SELECT x FROM c") if name == "sqlite" else "INSERT INTO t SELECT 1 FROM pg_sleep(0.6)"

    async def main() -> None:
        async with migrated(backend) as db:
            async with db.transaction() as tx:
                await tx.execute("CREATE TABLE t (x INTEGER)")
            task = asyncio.create_task(to_the_end(db._writer, slow))
            started = time.monotonic()
            for _ in range(3):  # as node.stopping.cancel_and_wait does
                await asyncio.sleep(0.05)
                task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            if name == "postgresql":
                assert time.monotonic() - started >= 0.6  # the caller waited for the statement
            row = await db.fetchone("SELECT count(*) FROM t")  # it ran to its end before
            assert row[0] == (3000000 if name == "sqlite" else 1)
            async with db.transaction() as tx:  # and the writer takes the next transaction
                await tx.execute("INSERT INTO t VALUES (7)")

    asyncio.run(main())


def test_a_transaction_inside_another_of_the_same_task_is_refused_and_a_failed_one_leaves_nothing(backend) -> None:
    async def main() -> None:
        async with migrated(backend) as db:
            async with db.transaction() as tx:
                await tx.execute("CREATE TABLE t (x INTEGER)")
            with pytest.raises(StoreError, match="inside another"):
                async with db.transaction() as tx:
                    await tx.execute("INSERT INTO t VALUES (1)")
                    async with db.transaction():
                        pass
            with pytest.raises((sqlite3.DatabaseError, psycopg.Error)):
                async with db.transaction() as tx:
                    await tx.execute("INSERT INTO t VALUES (2)")
                    await tx.execute("INSERT INTO no_such_table VALUES (3)")
            async with db.maybe_transaction(None) as tx:
                await tx.execute("INSERT INTO t VALUES (4)")
            assert [r[0] for r in await db.fetchall("SELECT x FROM t")] == [4]
            assert db.commits >= 2

    asyncio.run(main())


def test_a_database_a_newer_gwx_migrated_is_refused(backend) -> None:
    name, _ = backend
    schema = sqlite_schema if name == "sqlite" else pg_schema
    newest = sqlite_schema.LATEST_VERSION

    async def main() -> None:
        async with migrated(backend) as db:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO schema_version VALUES (?, 'future', '2030-01-01T00:00:00.000000Z')",
                                 (newest + 5,))
            with pytest.raises(StoreSchemaTooNew) as info:
                await schema.migrate(db, T0)
            assert info.value.code == "STORE_SCHEMA_TOO_NEW"
            assert (info.value.details["version"], info.value.details["supported"]) == (newest + 5, newest)
            with pytest.raises(StoreSchemaTooNew):  # a gwx that knows no migration at all refuses it too
                await schema.migrate(db, T0, ())
            assert await schema.current_version(db) == newest + 5

    asyncio.run(main())
