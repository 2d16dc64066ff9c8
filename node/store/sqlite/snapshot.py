"""A consistent copy of a (possibly running) node's database, for ``gwx node backup``.

SQLite's online backup API copies the database in one step under one read transaction: in WAL mode
the node keeps writing meanwhile, and the copy is the database as of one commit. The blobs the copy
refers to (the ``blob_refs`` view) were written and fsynced before the rows naming them were
committed (:mod:`node.store.blobs`), so every one exists when the copy is taken — except small ones
kept in the database (``inline_blobs``): those are in the copy itself.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.errors import StoreError
from node.store.sqlite.store import BLOB_DIR, DB_NAME


def snapshot(data_dir: Path, dest: Path) -> list[str]:
    """Copy ``data_dir``'s database to ``dest``; answer the digests of the blobs the copy refers to."""
    path = Path(data_dir) / DB_NAME
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            target = sqlite3.connect(dest)
            try:
                source.backup(target, pages=-1)  # one step: one read transaction, one consistent state
                # A small blob kept in the database travels inside the copy (it has no file:
                # node.store.sqlite.inline_blobs).
                # A node not yet started on a gwx with migration 20 has no such table: every blob a file.
                inline = target.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inline_blobs'").fetchone()
                sql = "SELECT digest FROM blob_refs" + (
                    " WHERE digest NOT IN (SELECT digest FROM inline_blobs)" if inline else "")
                digests = sorted({r[0] for r in target.execute(sql) if r[0]})
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot copy {path}: {exc}", path=str(path)) from None
    return digests


def blob_path(data_dir: Path, digest: str) -> Path:
    return Path(data_dir) / BLOB_DIR / "sha256" / digest[:2] / digest[2:]
