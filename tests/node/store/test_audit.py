"""node.store.sqlite.audit: the chain verifies, tampering is found at the right seq, triggers refuse rewrites."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3

import pytest

from exchange_protocol.audit_chain import check_excerpt
from exchange_protocol.canonical import canonical_json
from node.errors import AuditChainBroken
from node.store import NewEvent
from node.store.sqlite.audit import GENESIS_HASH
from node.store.sqlite.db import Database
from node.store.sqlite.migrations import MIGRATIONS, migrate
from node.store.sqlite.store import DB_NAME
from tests.node.store.conftest import DATABASE_ERRORS, open_store, queued_item, raw_database
from tests.support import FakeClock


async def _fill(store, n=12):
    async with store.transaction() as tx:
        await store.audit.append_many(tx, [
            NewEvent(f"clerk-{i % 3}", "doc.note", {"doc_id": f"d-{i}"}, {"n": i, "text": "已阅"}) for i in range(n)])


def test_chain_links_and_hashes_are_reproducible(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            await _fill(store)
            assert await store.audit.verify_chain() == 12
            events = await store.audit.events(limit=100)
            assert [e.seq for e in events] == list(range(1, 13)) and events[0].prev_hash == GENESIS_HASH
            for prev, event in zip([None, *events], events, strict=False):
                if prev is not None:
                    assert event.prev_hash == prev.hash
            # the documented formula (version 2: a new log is v2 from its first event), recomputed
            # independently from the raw row
            with raw_database(store.db.path) as raw:
                seq, at, actor, action, subjects, details, prev_hash, digest, stored_content = raw.execute(
                    "SELECT seq, at, actor, action, subjects, details, prev_hash, hash, content_hash FROM audit"
                    " WHERE seq = 5").fetchone()
                assert raw.execute("SELECT from_seq FROM audit_version WHERE version = 2").fetchone() == (1,)
            content = hashlib.sha256(canonical_json([at, actor, action, json.loads(subjects),
                                                     json.loads(details)])).hexdigest()
            assert content == stored_content
            assert hashlib.sha256(canonical_json([prev_hash, seq, content])).hexdigest() == digest
            assert (await store.audit.head()) == (12, events[-1].hash)
    asyncio.run(main())


def test_update_and_delete_are_refused_by_triggers(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            await _fill(store, 3)
            path = store.db.path
        with raw_database(path) as raw:
            with pytest.raises(DATABASE_ERRORS, match="append-only"):
                raw.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 2")
            with pytest.raises(DATABASE_ERRORS, match="append-only"):
                raw.execute("DELETE FROM audit WHERE seq = 3")
        async with open_store(tmp_path) as store:
            assert await store.audit.verify_chain() == 3
            with pytest.raises(DATABASE_ERRORS, match="append-only"):
                async with store.transaction() as tx:
                    await tx.execute("DELETE FROM audit")
    asyncio.run(main())


@pytest.mark.parametrize("tamper, seq, reason", [
    ("UPDATE audit SET details = '{\"n\":7,\"text\":\"未阅\"}' WHERE seq = 8", 8, "hash"),
    ("UPDATE audit SET actor = 'clerk-9' WHERE seq = 1", 1, "hash"),
    ("DELETE FROM audit WHERE seq = 5", 5, "missing"),
])
def test_tampering_after_dropping_triggers_is_detected_at_its_seq(tmp_path, tamper, seq, reason):
    async def main():
        async with open_store(tmp_path) as store:
            await _fill(store)
            path = store.db.path
        with raw_database(path) as raw:
            raw.drop_audit_triggers()
            raw.execute(tamper)
        async with open_store(tmp_path) as store:
            with pytest.raises(AuditChainBroken) as info:
                await store.audit.verify_chain(page=4)  # small pages: the walk crosses page borders
            assert info.value.code == "AUDIT_CHAIN_BROKEN"
            assert (info.value.details["seq"], info.value.details["reason"]) == (seq, reason)
    asyncio.run(main())


def test_rewriting_a_row_and_its_hash_breaks_the_next_link(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            await _fill(store)
            path = store.db.path
        with raw_database(path) as raw:
            raw.drop_audit_triggers()
            row = raw.execute("SELECT prev_hash, seq, at, actor, action, subjects FROM audit WHERE seq = 6").fetchone()
            forged_details = {"n": 5, "text": "伪造"}
            content = hashlib.sha256(canonical_json([row[2], row[3], row[4], json.loads(row[5]),
                                                     forged_details])).hexdigest()
            forged = hashlib.sha256(canonical_json([row[0], row[1], content])).hexdigest()
            raw.execute("UPDATE audit SET details = ?, hash = ?, content_hash = ? WHERE seq = 6",
                        (json.dumps(forged_details, ensure_ascii=False), forged, content))
        async with open_store(tmp_path) as store:
            with pytest.raises(AuditChainBroken) as info:
                await store.audit.verify_chain()
            assert (info.value.details["seq"], info.value.details["reason"]) == (7, "link")
    asyncio.run(main())


def test_audit_events_commit_and_roll_back_with_their_change(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            item = await queued_item(store, "m-1")
            with pytest.raises(RuntimeError):
                async with store.transaction() as tx:
                    await store.queue.enqueue(item, tx=tx)
                    raise RuntimeError("crash between change and commit")
            assert await store.queue.get("m-1") is None and await store.audit.events() == []
            async with store.transaction() as tx:
                await store.queue.enqueue(item, tx=tx)
                await store.queue.hold("m-1", actor="operator", tx=tx)
            assert [e.action for e in await store.audit.events()] == ["queue.enqueue", "queue.hold"]
            assert await store.audit.verify_chain() == 2
    asyncio.run(main())


async def _v1_log(tmp_path, n: int) -> None:
    """A log written by a gwx before migration 18 (the store at schema 17): version 1 hashes, by the
    formula that gwx used."""
    db = await Database.open(tmp_path / DB_NAME)
    try:
        await migrate(db, FakeClock()(), tuple(m for m in MIGRATIONS if m.version < 18))
    finally:
        await db.close()
    prev = GENESIS_HASH
    with sqlite3.connect(tmp_path / DB_NAME) as raw:
        for seq in range(1, n + 1):
            at, subjects, details = f"2026-03-02T09:00:{seq:02d}.000000Z", {"doc_id": "d-x" if seq % 3 == 1 else f"d-{seq}"}, {"n": seq}
            digest = hashlib.sha256(canonical_json([prev, seq, at, "clerk", "doc.note", subjects, details])).hexdigest()
            raw.execute("INSERT INTO audit (seq, at, actor, action, subjects, details, prev_hash, hash)"
                        " VALUES (?, ?, 'clerk', 'doc.note', ?, ?, ?, ?)",
                        (seq, at, json.dumps(subjects), json.dumps(details), prev, digest))
            prev = digest


@pytest.mark.sqlite_only  # a log a gwx before migration 18 wrote: PostgreSQL stores start at v2
def test_a_log_migrated_to_v2_keeps_its_v1_hashes_and_an_excerpt_recomputes_to_the_head(tmp_path):
    async def main():
        await _v1_log(tmp_path, 9)  # seqs 1..9, the document's at 1, 4, 7
        with sqlite3.connect(tmp_path / DB_NAME) as raw:
            before = raw.execute("SELECT seq, hash FROM audit ORDER BY seq").fetchall()
        async with open_store(tmp_path) as store:  # migration 18: v2 from seq 10
            assert await store.audit.v2_from_seq() == 10
            await _fill(store, 6)  # seqs 10..15, other documents
            async with store.transaction() as tx:
                await store.audit.append(tx, "clerk", "doc.note", {"doc_id": "d-x"}, {"n": "v2"})  # seq 16
            await _fill(store, 3)  # 17..19
            assert await store.audit.verify_chain(page=4) == 19
            with sqlite3.connect(store.db.path) as raw:
                assert raw.execute("SELECT seq, hash FROM audit WHERE seq <= 9 ORDER BY seq").fetchall() == before
                assert raw.execute("SELECT COUNT(*) FROM audit WHERE content_hash IS NULL").fetchone() == (9,)
            excerpt = await store.audit.excerpt("d-x", page=2)
            assert [e["seq"] for e in excerpt["events"]] == [1, 4, 7, 16]
            assert len(excerpt["links"]) == 9 and len(excerpt["content_hashes"]) == 10  # 1..9 v1, 10..19 v2
            checked = check_excerpt(json.loads(json.dumps(excerpt)))
            assert (checked.events, checked.recomputed, checked.not_recomputed, checked.head_seq) == (4, 13, 6, 19)
    asyncio.run(main())


@pytest.mark.parametrize("tamper, reason", [
    ("DELETE FROM audit WHERE seq = 12", "missing"),  # another document's v2 event between the document's
    ("UPDATE audit SET details = '{\"n\":7}', content_hash = '" + "ab" * 32 + "' WHERE seq = 12", "hash"),
])
def test_an_event_removed_or_replaced_in_a_live_v2_log_is_caught(tmp_path, tamper, reason):
    async def main():
        async with open_store(tmp_path) as store:
            for i in range(4):
                async with store.transaction() as tx:
                    await store.audit.append(tx, "clerk", "doc.note", {"doc_id": "d-x"}, {"n": i})
                await _fill(store, 4)
            path = store.db.path
        with raw_database(path) as raw:
            raw.drop_audit_triggers()
            raw.execute(tamper)
        async with open_store(tmp_path) as store:
            with pytest.raises(AuditChainBroken) as info:
                await store.audit.verify_chain(page=4)
            assert (info.value.details["seq"], info.value.details["reason"]) == (12, reason)
            if reason == "missing":  # and no excerpt is given over the hole
                with pytest.raises(AuditChainBroken):
                    await store.audit.excerpt("d-x")
    asyncio.run(main())


def test_the_v2_seq_cannot_be_changed(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            await _fill(store, 2)
            path = store.db.path
        with raw_database(path) as raw:
            for statement in ("UPDATE audit_version SET from_seq = 100", "DELETE FROM audit_version"):
                with pytest.raises(DATABASE_ERRORS, match="append-only"):
                    raw.execute(statement)
    asyncio.run(main())
