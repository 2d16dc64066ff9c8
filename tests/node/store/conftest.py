"""Shared helpers for the store tests: a store opened in a tmp dir on a hand-moved clock (tests.support).

Every test of a module that opens its store with :func:`open_store` runs on both backends, SQLite and
PostgreSQL (a real server, tests/postgres_server.py, one database per test): ``pytest_generate_tests``
parametrises it over :data:`BACKENDS`, and :func:`open_store` opens the backend of the running test.
Tests of SQLite's own machinery (tests/node/store/sqlite/) stay on SQLite.

Tests are plain functions that call ``asyncio.run`` (no pytest-asyncio); each test opens and closes
its own store so no aiosqlite thread outlives it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
import pytest

from node.store import InboundEnvelope, OutboundItem
from node.store.postgresql import Store as PgStore
from node.store.postgresql.dialect import translate
from node.store.sqlite import Store
from tests.support import FakeClock

BACKENDS = ("sqlite", "postgresql")
# What a statement refused by the database raises, on either backend.
DATABASE_ERRORS = (sqlite3.DatabaseError, psycopg.Error)
_running: dict[str, str | None] = {"dsn": None}  # the running test's PostgreSQL database (None: SQLite)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Both backends for a test whose module opens its store with :func:`open_store`, unless it is about
    SQLite itself (tests/node/store/sqlite/, or marked ``sqlite_only``). A module elsewhere takes part by
    importing this hook and :func:`store_backend` (tests/node/documents/test_ledger_statistics.py)."""
    if "store_backend" in metafunc.fixturenames and "sqlite" not in metafunc.module.__name__.split(".")[:-1] \
            and getattr(metafunc.module, "open_store", None) is open_store \
            and metafunc.definition.get_closest_marker("sqlite_only") is None:
        metafunc.parametrize("store_backend", BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def store_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The backend :func:`open_store` opens in this test (SQLite unless parametrised)."""
    backend = getattr(request, "param", "sqlite")
    if backend != "postgresql":
        yield backend
        return
    server = request.getfixturevalue("postgres_server")
    _running["dsn"] = server.new_database()
    try:
        yield backend
    finally:
        dsn, _running["dsn"] = _running["dsn"], None
        server.drop_database(dsn)


def running_dsn() -> str | None:
    """The running test's PostgreSQL DSN, or None when it runs on SQLite."""
    return _running["dsn"]


@asynccontextmanager
async def open_store(path, clock=None, **kwargs):
    if _running["dsn"] is not None:
        store = await PgStore.open(path, dsn=_running["dsn"], clock=clock or FakeClock(), **kwargs)
    else:
        store = await Store.open(path, clock=clock or FakeClock(), **kwargs)
    try:
        yield store
    finally:
        await store.close()


class RawDatabase:
    """The store's database reached past the store (an operator's ``sqlite3``/``psql`` session)."""

    def __init__(self, conn: Any, postgresql: bool) -> None:
        self._conn = conn
        self._postgresql = postgresql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(translate(sql) if self._postgresql else sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Many rows in one transaction (PostgreSQL: psycopg pipelines them, no round trip a row)."""
        if self._postgresql:
            with self._conn.transaction(), self._conn.cursor() as cursor:
                cursor.executemany(translate(sql), rows)
        else:
            self._conn.executemany(sql, rows)

    def drop_audit_triggers(self) -> None:
        on = " ON audit" if self._postgresql else ""
        self._conn.execute(f"DROP TRIGGER audit_no_update{on}")
        self._conn.execute(f"DROP TRIGGER audit_no_delete{on}")


@contextmanager
def raw_database(store_path) -> Iterator[RawDatabase]:
    """A connection of its own to the database of the store last opened at ``store_path`` (the
    ``store.db.path`` of a SQLite store), committing each statement."""
    if _running["dsn"] is not None:
        with psycopg.connect(_running["dsn"], autocommit=True) as conn:
            yield RawDatabase(conn, True)
        return
    with sqlite3.connect(store_path) as conn:
        yield RawDatabase(conn, False)


async def put_envelope(store: Store, message_id: str, origin: str = "node-a", size: int = 600,
                       receipt: bytes | None = None) -> InboundEnvelope:
    data = message_id.encode() + os.urandom(size)
    ref = await store.blobs.put(data)
    assert ref.digest == hashlib.sha256(data).hexdigest()
    return InboundEnvelope(message_id, ref.digest, ref.digest, origin,
                           receipt or b"receipt:" + message_id.encode() + os.urandom(8), "document", ref.size)


async def queued_item(store: Store, message_id: str, destination: str = "node-b", **kwargs) -> OutboundItem:
    ref = await store.blobs.put(message_id.encode() + os.urandom(300))
    return OutboundItem(message_id, destination, ref.digest, ref.size, "document", **kwargs)
