"""node.store.sqlite.db: PRAGMAs in force, transactions commit or roll back, readers see committed state."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest

from node.errors import StoreError
from node.store.sqlite.db import Database, from_db_time, to_db_time


def test_pragmas_wal_full_foreign_keys_busy_timeout(tmp_path):
    async def main():
        db = await Database.open(tmp_path / "n.db")
        try:
            assert (await db.pragma("journal_mode")).lower() == "wal"
            assert await db.pragma("synchronous") == 2  # FULL
            assert await db.pragma("foreign_keys") == 1
            assert await db.pragma("busy_timeout") >= 1000
        finally:
            await db.close()
    asyncio.run(main())
    # Another process (the sqlite3 module here) sees WAL mode persisted in the file.
    with sqlite3.connect(tmp_path / "n.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_transaction_commits_and_rolls_back(tmp_path):
    async def main():
        db = await Database.open(tmp_path / "n.db")
        try:
            async with db.transaction() as tx:
                await tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
                await tx.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])
            with pytest.raises(RuntimeError):
                async with db.transaction() as tx:
                    await tx.execute("INSERT INTO t VALUES (3, 'c')")
                    raise RuntimeError("boom")
            with pytest.raises(sqlite3.IntegrityError):
                async with db.transaction() as tx:
                    await tx.execute("INSERT INTO t VALUES (4, 'd')")
                    await tx.execute("INSERT INTO t VALUES (1, 'dup')")
            rows = await db.fetchall("SELECT k, v FROM t ORDER BY k")
            assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]
        finally:
            await db.close()
    asyncio.run(main())


def test_reader_sees_only_committed_rows_and_writers_do_not_interleave(tmp_path):
    async def main():
        db = await Database.open(tmp_path / "n.db")
        try:
            async with db.transaction() as tx:
                await tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            seen_inside = []

            async def writer(base):
                async with db.transaction() as tx:
                    for k in range(base, base + 5):
                        await tx.execute("INSERT INTO t VALUES (?)", (k,))
                        await asyncio.sleep(0)
                    seen_inside.append((await db.fetchone("SELECT COUNT(*) FROM t"))[0])

            await asyncio.gather(writer(0), writer(100), writer(200))
            # each reader snapshot inside a transaction saw only other, finished transactions
            assert sorted(seen_inside) == [0, 5, 10]
            assert (await db.fetchone("SELECT COUNT(*) FROM t"))[0] == 15
        finally:
            await db.close()
    asyncio.run(main())


def test_times_are_fixed_width_utc_and_sort_as_text():
    east8 = timezone(timedelta(hours=8))
    a = to_db_time(datetime(2026, 1, 1, 8, 0, tzinfo=east8))
    b = to_db_time(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert a == "2026-01-01T00:00:00.000000Z" and a < b
    assert from_db_time(a) == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(StoreError):
        to_db_time(datetime(2026, 1, 1))  # naive: whose local time?


def test_a_transaction_cancelled_during_begin_leaves_the_writer_usable(tmp_path):
    """Cancelled while BEGIN waits for another process's write lock: once that lock goes, the BEGIN
    that still ran is undone, and the next transaction works (no 'transaction within a transaction')."""
    import sqlite3

    async def main():
        db = await Database.open(tmp_path / "gwx.db")
        try:
            async with db.transaction() as tx:
                await tx.execute("CREATE TABLE t (x INTEGER)")
            other = sqlite3.connect(tmp_path / "gwx.db", isolation_level=None, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")  # another writer holds the lock

            async def write():
                async with db.transaction() as tx:
                    await tx.execute("INSERT INTO t VALUES (1)")

            task = asyncio.create_task(write())
            await asyncio.sleep(0.3)  # the BEGIN IMMEDIATE is waiting on the busy timeout
            task.cancel()
            await asyncio.sleep(0.1)
            other.execute("COMMIT")  # the lock goes; the queued BEGIN runs
            with pytest.raises(asyncio.CancelledError):
                await task
            other.close()
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (2)")
            assert [tuple(r) for r in await db.fetchall("SELECT x FROM t")] == [(2,)]
        finally:
            await db.close()

    asyncio.run(main())


def test_an_sqlite_older_than_3_35_is_refused_with_a_typed_error(tmp_path, monkeypatch):
    """The store's compare-and-set updates use UPDATE … RETURNING (SQLite 3.35): with an older
    library a node must refuse to open its database with a clear error, not fail at the first 签收."""
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")

    async def main():
        try:
            db = await Database.open(tmp_path / "n.db")
        except StoreError as exc:
            return exc
        await db.close()
        return None
    refused = asyncio.run(main())
    assert isinstance(refused, StoreError) and refused.code == "STORE_SQLITE_TOO_OLD"
    assert "3.35" in refused.message and "3.34.1" in refused.message
    assert not (tmp_path / "n.db").exists()


def test_an_offloaded_transaction_leaves_the_loop_serving_during_a_long_statement(tmp_path):
    """Housekeeping and migrations (``transaction(offload=True)``) run their statements on the
    writer's thread: a scan that takes half a second does not hold the event loop, whereas a hot-path
    transaction's statements run on the loop itself. Commit and rollback work the same."""
    import time

    ticks = 0

    def slow() -> int:  # the statement: how often the loop ticked while it ran
        before = ticks
        time.sleep(0.5)
        return ticks - before

    async def ticks_during(db, offload: bool) -> int:
        nonlocal ticks
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        async with db.transaction(offload=offload) as tx:
            (row,) = await tx.fetchall("SELECT slow()")
        stop.set()
        await task
        return row[0]

    async def main():
        db = await Database.open(tmp_path / "n.db")
        try:
            db._writer_connection.create_function("slow", 0, slow)
            assert await ticks_during(db, True) >= 5  # the loop went on meanwhile
            assert await ticks_during(db, False) == 0  # held for the statement's length
            async with db.transaction(offload=True) as tx:
                await tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
                await tx.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            with pytest.raises(RuntimeError):
                async with db.transaction(offload=True) as tx:
                    await tx.execute("DELETE FROM t")
                    raise RuntimeError("boom")
            assert [r[0] for r in await db.fetchall("SELECT k FROM t ORDER BY k")] == [1, 2]
        finally:
            await db.close()
    asyncio.run(main())


async def _one_row(path) -> Database:
    """A database whose table ``t`` holds the row (1, 'one'), committed."""
    db = await Database.open(path)
    async with db.transaction() as tx:
        await tx.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        await tx.execute("INSERT INTO t VALUES (1, 'one')")
    return db


def test_a_key_lookup_runs_on_the_loop_and_sees_only_committed_rows(tmp_path):
    """``Database.lookup`` reads a key's rows on the loop's own thread (no hand-over to the reader's),
    the last committed snapshot like ``fetchall``; inside a transaction, the transaction's own view."""
    import threading

    async def main():
        db = await _one_row(tmp_path / "n.db")
        try:
            db._looker.create_function("thread", 0, threading.get_ident)
            assert (await db.lookup_one("SELECT thread()"))[0] == threading.get_ident()
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (2, 'two')")
                assert await db.lookup_one("SELECT v FROM t WHERE k = ?", (2,)) is None  # not committed yet
                assert (await tx.lookup_one("SELECT v FROM t WHERE k = ?", (2,)))[0] == "two"  # the tx sees its own
            assert [tuple(r) for r in await db.lookup("SELECT k, v FROM t WHERE k = ?", (2,))] == [(2, "two")]
            assert db.lookups_deferred == 0
        finally:
            await db.close()
    asyncio.run(main())


def test_a_key_lookup_sqlite_finds_busy_is_made_again_on_the_reader_and_other_errors_are_raised(tmp_path):
    """The loop never waits on a lock: "busy" (a checkpoint truncating the WAL, a WAL being recovered
    — injected here, as neither can be had on demand while the node's connections are open) sends
    the read to the reader's thread, which may wait ``busy_timeout``; any other error is the caller's."""

    class BusyOnce:
        def __init__(self, conn):
            self.conn, self.busy = conn, True

        def execute(self, sql, params=()):
            if self.busy:
                self.busy = False
                error = sqlite3.OperationalError("database is locked")
                error.sqlite_errorcode = sqlite3.SQLITE_BUSY
                raise error
            return self.conn.execute(sql, params)

        def close(self):
            self.conn.close()

    async def main():
        db = await _one_row(tmp_path / "n.db")
        try:
            db._looker = BusyOnce(db._looker)
            assert (await db.lookup_one("SELECT v FROM t WHERE k = ?", (1,)))[0] == "one"
            assert db.lookups_deferred == 1
            with pytest.raises(sqlite3.OperationalError, match="no such table"):
                await db.lookup_one("SELECT v FROM missing WHERE k = ?", (1,))
            assert db.lookups_deferred == 1
        finally:
            await db.close()
    asyncio.run(main())
