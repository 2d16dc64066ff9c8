"""node.store.sqlite.audit: the chain verifies, tampering is found at the right seq, triggers refuse rewrites."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3

import pytest

from exchange_protocol.canonical import canonical_json
from node.errors import AuditChainBroken
from node.store import NewEvent
from node.store.sqlite.audit import GENESIS_HASH
from tests.node.store.conftest import open_store, queued_item


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
            # the documented formula, recomputed independently from the raw row
            with sqlite3.connect(store.db.path) as raw:
                seq, at, actor, action, subjects, details, prev_hash, digest = raw.execute(
                    "SELECT seq, at, actor, action, subjects, details, prev_hash, hash FROM audit WHERE seq = 5"
                ).fetchone()
            payload = canonical_json([prev_hash, seq, at, actor, action, json.loads(subjects), json.loads(details)])
            assert hashlib.sha256(payload).hexdigest() == digest
            assert (await store.audit.head()) == (12, events[-1].hash)
    asyncio.run(main())


def test_update_and_delete_are_refused_by_triggers(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            await _fill(store, 3)
            path = store.db.path
        with sqlite3.connect(path) as raw:
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                raw.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 2")
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                raw.execute("DELETE FROM audit WHERE seq = 3")
        async with open_store(tmp_path) as store:
            assert await store.audit.verify_chain() == 3
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
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
        with sqlite3.connect(path) as raw:
            raw.execute("DROP TRIGGER audit_no_update")
            raw.execute("DROP TRIGGER audit_no_delete")
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
        with sqlite3.connect(path) as raw:
            raw.execute("DROP TRIGGER audit_no_update")
            row = raw.execute("SELECT prev_hash, seq, at, actor, action, subjects FROM audit WHERE seq = 6").fetchone()
            forged_details = {"n": 5, "text": "伪造"}
            forged = hashlib.sha256(canonical_json([row[0], row[1], row[2], row[3], row[4], json.loads(row[5]),
                                                    forged_details])).hexdigest()
            raw.execute("UPDATE audit SET details = ?, hash = ? WHERE seq = 6",
                        (json.dumps(forged_details, ensure_ascii=False), forged))
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
