"""What is the PostgreSQL backend's own: node.toml's [store], the server's durability checked at open,
the dialect, and the status report's rows read from PostgreSQL. (The roles themselves are the
store's tests, run on both backends: tests/node/store/conftest.py.)"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from node.config import StoreSettings, parse_config
from node.errors import ConfigError, StoreError
from node.store import ErrorInfo, OutboundItem
from node.store.opener import open_store, read_status_rows
from node.store.postgresql.dialect import translate
from tests.support import T0, FakeClock


def _config(store: dict | None) -> dict:
    raw = {"node_id": "city-a", "units": []}
    return raw | ({"store": store} if store is not None else {})


def test_store_section_chooses_the_backend(tmp_path: Path) -> None:
    assert parse_config(_config(None), tmp_path).store == StoreSettings("sqlite", "", 30.0, "")
    chosen = parse_config(_config({"backend": "postgresql", "dsn": "host=/run/postgresql dbname=gwx"}), tmp_path)
    assert chosen.store == StoreSettings("postgresql", "host=/run/postgresql dbname=gwx")


@pytest.mark.parametrize("store, key", [
    ({"backend": "postgresql"}, "store.dsn"),
    ({"backend": "mysql", "dsn": "x"}, "store.backend"),
    ({"dsn": "host=/run/postgresql"}, "store.dsn"),
    ({"backend": "postgresql", "dsn": "x", "pool": 3}, "store"),
])
def test_a_wrong_store_section_is_a_config_error(tmp_path: Path, store: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config(store), tmp_path)
    assert info.value.details["key"] == key


def test_a_server_that_would_lose_commits_is_refused(tmp_path: Path, postgres_server) -> None:
    dsn = postgres_server.new_database()
    postgres_server.admin(f"ALTER DATABASE {dsn.rsplit('=', 1)[1]} SET synchronous_commit = off")

    async def main() -> None:
        with pytest.raises(StoreError, match="synchronous_commit=off") as info:
            await open_store(tmp_path, settings=StoreSettings("postgresql", dsn), clock=FakeClock())
        assert info.value.code == "STORE_ERROR"
    asyncio.run(main())
    postgres_server.drop_database(dsn)


def test_an_unreachable_server_is_a_store_error_naming_no_password(tmp_path: Path) -> None:
    dsn = f"host={tmp_path} dbname=gwx user=gwx password=s3cret connect_timeout=2"

    async def main() -> None:
        with pytest.raises(StoreError) as info:
            await open_store(tmp_path, settings=StoreSettings("postgresql", dsn))
        assert "s3cret" not in str(info.value.details) and "s3cret" not in info.value.message
    asyncio.run(main())


@pytest.mark.parametrize("sqlite, postgresql", [
    ("SELECT a FROM t WHERE b = ? AND c LIKE '%?'", "SELECT a FROM t WHERE b = %s AND c ILIKE '%%?'"),
    ("INSERT OR IGNORE INTO t (a) VALUES (?)", "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"),
    ("UPDATE t SET a = ? WHERE b IS ? AND c IS NOT ? RETURNING a",
     "UPDATE t SET a = %s WHERE b IS NOT DISTINCT FROM %s AND c IS DISTINCT FROM %s RETURNING a"),
    ("SELECT 1 FROM i WHERE +i.deadline < ? ORDER BY +i.deadline, a + b",
     "SELECT 1 FROM i WHERE i.deadline < %s ORDER BY i.deadline, a + b"),
    ("SELECT COUNT(*) FROM (SELECT x FROM (SELECT 1 AS x) WHERE x > 0)",
     "SELECT COUNT(*) FROM (SELECT x FROM (SELECT 1 AS x) AS _q1 WHERE x > 0) AS _q2"),
    ("SELECT * FROM (SELECT 1) AS named", "SELECT * FROM (SELECT 1) AS named"),
])
def test_statements_are_said_in_postgresqls_dialect(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite) == postgresql


def test_the_status_report_reads_its_rows_from_postgresql(tmp_path: Path, postgres_server) -> None:
    dsn = postgres_server.new_database()
    settings = StoreSettings("postgresql", dsn)

    async def main() -> None:
        store = await open_store(tmp_path, settings=settings, clock=FakeClock())
        try:
            for n in range(3):
                ref = await store.blobs.put(b"envelope %d" % n)
                await store.queue.enqueue(OutboundItem(f"m-{n}", "county-b", ref.digest, ref.size, "document"))
            await store.queue.defer("m-1", T0 + dt.timedelta(minutes=5), ErrorInfo("PEER_UNREACHABLE", "refused"))
        finally:
            await store.close()
    asyncio.run(main())
    rows = read_status_rows(tmp_path, settings)
    assert rows is not None
    assert sorted(rows["queues"]) == [("county-b", "deferred", 1), ("county-b", "incoming", 2)]
    assert [r[:3] + r[4:] for r in rows["waiting"]] == [("county-b", "PEER_UNREACHABLE", "refused", 1)]
    assert rows["adapters"] == [] and rows["adapter_dead"] == []
    assert read_status_rows(tmp_path, StoreSettings("postgresql", postgres_server.new_database(migrated=False))) is None
    postgres_server.drop_database(dsn)
