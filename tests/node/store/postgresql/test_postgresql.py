"""What is the PostgreSQL backend's own: node.toml's [store], the server's durability checked at open,
the dialect, the status report's rows read from PostgreSQL, and writes sent in pipeline mode. (The roles themselves are the
store's tests, run on both backends: tests/node/store/conftest.py.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from exchange_protocol.envelope import HeaderDraft, MessageType
from node.config import StoreSettings, parse_config
from node.errors import ConfigError, StoreError
from node.store import Draft, ErrorInfo, NewEvent, OutboundItem
from node.store.opener import open_store, read_status_rows
from node.store.postgresql.dialect import translate
from tests.node.store.test_exchange import UNIT_A, UNIT_B
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


def test_a_write_sent_without_waiting_fails_its_own_work_alone(tmp_path: Path, postgres_server) -> None:
    """The rows nobody waits for (a draft, an audit event) go in pipeline mode, their answers read
    later: a draft whose id is taken fails the work that wrote it — not the work after it in the same
    transaction, nor the whole batch — and the others' drafts and audit events commit, the chain whole."""
    def draft(n: int) -> Draft:
        header = HeaderDraft.new(MessageType.DOCUMENT, "city-a", "city-b", UNIT_A, (UNIT_B,), T0, dt.timedelta(days=3))
        return Draft(header, "ab" * 32, 10 + n, T0, None)

    async def main() -> None:
        store = await open_store(tmp_path, clock=FakeClock(),
                                 settings=StoreSettings("postgresql", postgres_server.new_database()))
        try:
            taken = draft(0)
            async with store.transaction() as tx:
                await store.drafts.add_draft(tx, taken)
            gate = asyncio.Event()

            async def hold(tx):  # keeps the writer busy so the next works queue up as one batch
                await gate.wait()
                return "first"

            def work(n: int, d: Draft):
                async def run(tx):
                    await store.drafts.add_draft(tx, d)
                    await store.audit.append(tx, "test", "work", {"n": n})
                    return n
                return run
            first = asyncio.ensure_future(store.write_together(hold))
            await asyncio.sleep(0.05)
            batches = store.committer.batches
            mine = [draft(n) for n in range(1, 5)]
            rest = [asyncio.ensure_future(store.write_together(work(n, taken if n == 2 else d)))
                    for n, d in enumerate(mine, start=1)]
            await asyncio.sleep(0.05)
            gate.set()
            outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
            assert [outcomes[0], outcomes[1], outcomes[3], outcomes[4]] == ["first", 1, 3, 4]
            assert "duplicate key" in str(outcomes[2])
            assert store.committer.batches - batches == 1  # the four works: one transaction
            kept = {d.header.message_id for d in await store.drafts.drafts_for("city-b")}
            assert kept == {taken.header.message_id} | {d.header.message_id for n, d in enumerate(mine, 1) if n != 2}
            events = await store.audit.events(limit=1000)
            assert [e.subjects["n"] for e in events if e.actor == "test"] == [1, 3, 4]
            assert await store.audit.verify_chain() == len(events)
        finally:
            await store.close()
    asyncio.run(main())


def test_many_rows_sent_at_once_keep_their_order_their_bytes_and_their_conflicts(tmp_path: Path, postgres_server) -> None:
    """``send_many`` sends an INSERT of many rows as one statement (more than one when its parameters
    would pass a statement's limit): 4,000 audit events keep their order and their chain; blobs keep
    their bytes, and a digest met twice in one batch, or already stored, is kept once."""
    blobs = [(hashlib.sha256(data).hexdigest(), data) for data in (os.urandom(40_000) for _ in range(3))]

    async def main() -> None:
        store = await open_store(tmp_path, clock=FakeClock(),
                                 settings=StoreSettings("postgresql", postgres_server.new_database()))
        try:
            await store.inline.ahead(blobs[:1])
            await store.inline.ahead([blobs[1], blobs[0], blobs[2], blobs[1]])  # as a group commit does, before the lock
            async with store.transaction() as tx:
                await store.audit.append_many(tx, [NewEvent("test", "many", {"n": n}) for n in range(4000)])
                await store.inline.add(tx, [blobs[1], blobs[0], blobs[2], blobs[1]])  # checked there, not sent
            # what the pipeline is for: 4,000 rows waited for the server a few times, not once a row
            assert tx.round_trips <= 3, tx.round_trips  # the chain head, its v2 mark, COMMIT's settle (the blobs' check in it)
            assert store.inline.written_locked == 0
            events = await store.audit.events(limit=5000)
            assert [e.subjects["n"] for e in events if e.actor == "test"] == list(range(4000))
            assert await store.audit.verify_chain() == len(events)
            assert await store.inline.count() == 3
            for digest, data in blobs:
                assert await store.blobs.read_bytes(digest) == data
        finally:
            await store.close()
    asyncio.run(main())
