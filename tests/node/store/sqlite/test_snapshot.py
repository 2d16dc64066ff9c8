"""node.store.sqlite.snapshot: ``gwx node backup``'s copy of a node's database, at any schema."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

from node.store.sqlite.db import Database
from node.store.sqlite.migrations import MIGRATIONS, migrate
from node.store.sqlite.snapshot import snapshot
from node.store.sqlite.store import DB_NAME

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_database_from_before_inline_blobs_is_copied_with_its_blob_list(tmp_path):
    """A node stopped on a gwx older than migration 20 (no inline_blobs table) is backed up all the same."""
    async def main():
        db = await Database.open(tmp_path / DB_NAME)
        try:
            await migrate(db, T0, tuple(m for m in MIGRATIONS if m.version < 20))
        finally:
            await db.close()
    asyncio.run(main())
    digests = snapshot(tmp_path, tmp_path / "copy.db")
    assert digests == []
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("SELECT name FROM sqlite_master WHERE name = 'inline_blobs'").fetchone() is None
        assert copy.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'blob_refs'").fetchone()[0] == 1
