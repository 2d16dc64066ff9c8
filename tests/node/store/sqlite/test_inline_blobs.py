"""node.store.sqlite.inline_blobs.SqliteReader at shutdown: closing the store while reader threads
are mid-read gives each of them the store's typed error (or its bytes), never the driver's."""

from __future__ import annotations

import hashlib
import sqlite3
import threading

import pytest

from node.errors import StoreError
from node.store.sqlite.inline_blobs import SqliteReader


def _database(tmp_path, blobs: int = 20) -> tuple[object, dict[str, bytes]]:
    path = tmp_path / "gwx.db"
    data = {hashlib.sha256(bytes([i]) * 5000).hexdigest(): bytes([i]) * 5000 for i in range(blobs)}
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE inline_blobs (digest TEXT PRIMARY KEY, size INTEGER, data BLOB)")
        conn.executemany("INSERT INTO inline_blobs VALUES (?, ?, ?)", [(d, len(b), b) for d, b in data.items()])
    return path, data


def test_closing_while_threads_read_gives_them_the_typed_error(tmp_path):
    path, data = _database(tmp_path)
    reader = SqliteReader(path)
    started, errors, wrong = threading.Barrier(9), [], []

    def read() -> None:
        started.wait()
        for _ in range(2000):
            for digest, expected in data.items():
                try:
                    got = reader(digest)
                except StoreError as exc:
                    errors.append(exc.code)
                    return
                except Exception as exc:  # what the test is about: anything else
                    wrong.append(repr(exc))
                    return
                if got != expected:
                    wrong.append(f"{digest}: other bytes")
                    return

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    started.wait()
    reader.close()
    for t in threads:
        t.join(timeout=30)
    assert wrong == [] and errors == ["STORE_BLOB_UNREADABLE"] * 8
    with pytest.raises(StoreError) as caught:  # and a thread that never read before
        reader(next(iter(data)))
    assert caught.value.code == "STORE_BLOB_UNREADABLE"
