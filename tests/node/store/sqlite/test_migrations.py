"""node.store.sqlite.migrations: from empty, idempotent re-open, one transaction per step, newer schema refused."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from node.errors import StoreSchemaTooNew
from node.store.sqlite.db import Database
from node.store.sqlite.migrations import LATEST_VERSION, MIGRATIONS, Migration, current_version, migrate
from tests.support import T0


def test_migrate_from_empty_then_reopen_changes_nothing(tmp_path):
    async def main():
        db = await Database.open(tmp_path / "n.db")
        try:
            assert await current_version(db) == 0
            assert await migrate(db, T0) == [m.version for m in MIGRATIONS]
            assert await current_version(db) == LATEST_VERSION
        finally:
            await db.close()
        db = await Database.open(tmp_path / "n.db")
        try:
            assert await migrate(db, T0) == []
            rows = await db.fetchall("SELECT version FROM schema_version")
            assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
        finally:
            await db.close()
    asyncio.run(main())
    with sqlite3.connect(tmp_path / "n.db") as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")}
    assert {"queue", "peers", "received", "outbox", "outbox_recipients", "inbox", "audit", "blob_refs"} <= tables


def test_failed_migration_rolls_back_whole_step(tmp_path):
    broken = MIGRATIONS + (Migration(LATEST_VERSION + 1, "broken", (
        "CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL")),)

    async def main():
        db = await Database.open(tmp_path / "n.db")
        try:
            with pytest.raises(sqlite3.OperationalError):
                await migrate(db, T0, broken)
            assert await current_version(db) == LATEST_VERSION
            assert await db.fetchone("SELECT name FROM sqlite_master WHERE name = 'extra'") is None
        finally:
            await db.close()
    asyncio.run(main())


def test_database_from_newer_gwx_is_refused(tmp_path):
    async def main():
        db = await Database.open(tmp_path / "n.db")
        try:
            await migrate(db, T0)
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO schema_version VALUES (?, 'future', '2030-01-01T00:00:00.000000Z')",
                                 (LATEST_VERSION + 5,))
            with pytest.raises(StoreSchemaTooNew) as info:
                await migrate(db, T0)
            assert info.value.details["version"] == LATEST_VERSION + 5
        finally:
            await db.close()
    asyncio.run(main())


def test_a_migration_older_than_the_newest_applied_is_applied_all_the_same(tmp_path):
    """Branches merged out of order: a database already at 3 that never had 2 (it came with another
    branch) gets 2 when a gwx that has it opens it, and 1 and 3 are not run again."""
    one = Migration(1, "one", ("CREATE TABLE one (x INTEGER)",))
    two = Migration(2, "two, merged late", ("CREATE TABLE two (x INTEGER)",))
    three = Migration(3, "three", ("CREATE TABLE three (x INTEGER)",))

    async def main():
        db = await Database.open(tmp_path / "n.db")
        try:
            assert await migrate(db, T0, (one, three)) == [1, 3]
            assert await migrate(db, T0, (one, two, three)) == [2]
            assert await db.fetchone("SELECT name FROM sqlite_master WHERE name = 'two'") is not None
            rows = await db.fetchall("SELECT version FROM schema_version ORDER BY version")
            assert [r[0] for r in rows] == [1, 2, 3]
            assert await migrate(db, T0, (one, two, three)) == []
        finally:
            await db.close()
    asyncio.run(main())


def test_no_index_is_a_prefix_of_another_on_the_same_table(tmp_path):
    """Each index costs an update per row written (a 通知 to 3,600 units writes 3,600 inbox rows): one
    whose columns begin another's serves no read the longer one does not (inbox_unit (unit_code,
    id) under inbox_search (unit_code, id, title, doc_number), dropped by migration 17)."""
    async def main():
        db = await Database.open(tmp_path / "n.db")
        try:
            await migrate(db, T0)
        finally:
            await db.close()
    asyncio.run(main())
    with sqlite3.connect(tmp_path / "n.db") as raw:
        indexes = {}
        for table, name in raw.execute("SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'"):
            unique = raw.execute(f"SELECT \"unique\" FROM pragma_index_list('{table}') WHERE name = ?",
                                 (name,)).fetchone()[0]
            columns = tuple(r[0] for r in raw.execute(f"SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"))
            indexes[name] = (table, columns, unique)
    redundant = [(short, long) for short, (table, cols, unique) in indexes.items() if not unique
                 for long, (table2, cols2, _) in indexes.items()
                 if long != short and table2 == table and len(cols2) > len(cols) and cols2[:len(cols)] == cols]
    assert not redundant, redundant
