"""node.store.sqlite.queue: enqueue, bounded windows oldest first, sent/defer/hold/bounce, depth, peers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from node.errors import StoreConflict, StoreDuplicate, StoreNotFound
from node.store import ErrorInfo
from tests.node.store.conftest import open_store, queued_item
from tests.support import FakeClock


def test_window_is_bounded_oldest_first_and_idempotent(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            for i in range(7):
                await store.enqueue(await queued_item(store, f"m{i}", "node-b"))
                clock.advance(seconds=1)
            await store.enqueue(await queued_item(store, "other", "node-c"))
            window = await store.queue.load_active_window("node-b", 3)
            assert [e.message_id for e in window] == ["m0", "m1", "m2"]
            assert all(e.state == "active" for e in window)
            # asking again before settling: the same window, not more rows
            again = await store.queue.load_active_window("node-b", 3)
            assert [e.message_id for e in again] == ["m0", "m1", "m2"]
            assert await store.queue.mark_sent(["m0", "m1"], {"m0": b"r0", "m1": b"r1"}) == 2
            window = await store.queue.load_active_window("node-b", 3)
            assert [e.message_id for e in window] == ["m2", "m3", "m4"]
            assert (await store.queue.get("m0")).receipt == b"r0"
            assert await store.queue.depth() == {"node-b": {"sent": 2, "active": 3, "incoming": 2},
                                                 "node-c": {"incoming": 1}}
    asyncio.run(main())


def test_defer_waits_until_due_and_keeps_the_error(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            await store.enqueue(await queued_item(store, "m1"))
            assert await store.queue.destinations_due() == ["node-b"]
            await store.queue.load_active_window("node-b", 10)
            start = clock.now
            retry_at = start + timedelta(seconds=30)
            await store.queue.defer("m1", retry_at, ErrorInfo("TRANSPORT_TIMEOUT", "对端超时"))
            entry = await store.queue.get("m1")
            assert (entry.state, entry.attempts, entry.first_attempt_at) == ("deferred", 1, start)
            assert entry.last_error == ErrorInfo("TRANSPORT_TIMEOUT", "对端超时")
            assert await store.queue.load_active_window("node-b", 10) == []
            assert await store.queue.destinations_due() == []
            assert await store.queue.next_due_at() == retry_at
            clock.now = retry_at
            assert await store.queue.destinations_due() == ["node-b"]
            [entry] = await store.queue.load_active_window("node-b", 10)
            assert entry.attempts == 1
            await store.queue.mark_sent(["m1"], b"receipt")
            entry = await store.queue.get("m1")
            assert entry.state == "sent" and entry.attempts == 2 and entry.last_error is None
            # a repeated mark_sent after a crash changes nothing
            assert await store.queue.mark_sent(["m1"], b"other") == 0
            assert (await store.queue.get("m1")).receipt == b"receipt"
    asyncio.run(main())


def test_hold_release_bounce_and_illegal_moves(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            for m in ("m1", "m2"):
                await store.enqueue(await queued_item(store, m))
            await store.queue.hold("m1", actor="operator", reason="核实收件单位")
            assert [e.message_id for e in await store.queue.load_active_window("node-b", 10)] == ["m2"]
            with pytest.raises(StoreConflict) as info:
                await store.queue.defer("m1", clock.now, ErrorInfo("X", "x"))
            assert info.value.details["state"] == "hold"
            await store.queue.release("m1", actor="operator")
            assert (await store.queue.get("m1")).state == "incoming"
            await store.queue.bounce("m2", ErrorInfo("RETRY_WINDOW_OVER", "重试期满，无法投递"))
            entry = await store.queue.get("m2")
            assert entry.state == "bounced" and entry.last_error.code == "RETRY_WINDOW_OVER"
            with pytest.raises(StoreConflict):
                await store.queue.hold("m2", actor="operator")
            with pytest.raises(StoreNotFound):
                await store.queue.release("nope", actor="operator")
            with pytest.raises(StoreDuplicate):
                await store.queue.enqueue(await queued_item(store, "m1"))
            actions = [e.action for e in await store.audit.events(message_id="m1")]
            assert actions == ["queue.enqueue", "queue.hold", "queue.release"]
    asyncio.run(main())


def test_expired_envelopes_leave_the_window_and_are_listed(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            soon = clock.now + timedelta(hours=1)
            await store.enqueue(await queued_item(store, "short", expires_at=soon))
            await store.enqueue(await queued_item(store, "long"))
            clock.now = soon
            assert [e.message_id for e in await store.queue.expired()] == ["short"]
            assert [e.message_id for e in await store.queue.load_active_window("node-b", 10)] == ["long"]
    asyncio.run(main())


def test_purge_finished_unpins_blobs(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            item = await queued_item(store, "m1")
            await store.enqueue(item)
            await store.queue.mark_sent(["m1"], b"r")
            assert await store.referenced([item.blob_digest]) == {item.blob_digest}
            clock.advance(days=31)
            assert await store.queue.purge_finished(clock.now - timedelta(days=30)) == 1
            assert await store.referenced([item.blob_digest]) == set()
            assert await store.collect_garbage(grace_seconds=0) == [item.blob_digest]
            # history survives the purge
            assert [e.action for e in await store.audit.events(message_id="m1")] == ["queue.enqueue", "queue.sent"]
    asyncio.run(main())


def test_peer_state_persists_and_since_moves_only_on_change(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            t0 = clock.now
            await store.peers.set_peer_state("node-b", "up")
            clock.advance(minutes=1)
            await store.peers.set_peer_state("node-b", "up")
            assert (await store.peers.get_peer("node-b")).since == t0
            t1 = clock.advance(minutes=1)
            await store.peers.set_peer_state("node-b", "backing-off", failures=3,
                                             error=ErrorInfo("TRANSPORT_REFUSED", "连接被拒绝"))
            with pytest.raises(StoreConflict):
                await store.peers.set_peer_state("node-b", "sleeping")
        async with open_store(tmp_path, clock) as store:
            [peer] = await store.peers.list_peers()
            assert (peer.node_id, peer.state, peer.since, peer.failures) == ("node-b", "backing-off", t1, 3)
            assert peer.last_error.code == "TRANSPORT_REFUSED"
            assert [e.action for e in await store.audit.events()] == ["peer.up", "peer.backing-off"]
    asyncio.run(main())


def test_due_times_and_expiry_are_per_destination(tmp_path):
    """A destination's queue sleeps until its own next attempt and bounces only its own expired rows."""
    from dataclasses import replace

    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            b = await queued_item(store, "b1", "node-b")
            c = await queued_item(store, "c1", "node-c")
            await store.enqueue(replace(b, not_before=clock.now + timedelta(seconds=30),
                                        expires_at=clock.now + timedelta(seconds=60)))
            await store.enqueue(replace(c, not_before=clock.now + timedelta(seconds=5),
                                        expires_at=clock.now + timedelta(seconds=10)))
            assert await store.queue.next_due_at("node-b") == clock.now + timedelta(seconds=30)
            assert await store.queue.next_due_at("node-c") == clock.now + timedelta(seconds=5)
            assert await store.queue.next_due_at() == clock.now + timedelta(seconds=5)
            assert await store.queue.next_due_at("node-d") is None
            clock.advance(seconds=20)
            assert [e.message_id for e in await store.queue.expired(destination="node-c")] == ["c1"]
            assert await store.queue.expired(destination="node-b") == []
            assert [e.message_id for e in await store.queue.expired()] == ["c1"]

    asyncio.run(main())


def test_the_sql_asks_the_transition_table(tmp_path, monkeypatch):
    """The rule lives in node.store.queue_states: a table that forbade holding a deferred row (and
    sent a released row straight to deferred) would be obeyed by the SQLite queue as it stands."""
    from node.store import queue_states as qs

    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            for message_id in ("m1", "m2"):
                await store.enqueue(await queued_item(store, message_id))
            await store.queue.defer("m1", clock.now, ErrorInfo("TRANSPORT_TIMEOUT", "对端超时"))
            monkeypatch.setitem(qs.TRANSITIONS, qs.QueueEvent.HOLD,
                                qs.Move(frozenset({qs.INCOMING, qs.ACTIVE}), qs.HOLD))
            monkeypatch.setitem(qs.TRANSITIONS, qs.QueueEvent.RELEASE, qs.Move(frozenset({qs.HOLD}), qs.DEFERRED))
            with pytest.raises(StoreConflict):
                await store.queue.hold("m1", actor="operator:zhang")
            await store.queue.hold("m2", actor="operator:zhang")
            await store.queue.release("m2", actor="operator:zhang")
            assert (await store.queue.get("m2")).state == "deferred"  # never tried, yet the table said so
    asyncio.run(main())


def test_an_operator_lists_pages_and_retries_waiting_rows_and_the_oldest_age_is_kept(tmp_path):
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            start = clock.now
            for m in ("m1", "m2", "m3"):
                await store.enqueue(await queued_item(store, m))
                clock.advance(seconds=10)
            await store.enqueue(await queued_item(store, "c1", "node-c"))
            await store.queue.load_active_window("node-b", 10)
            later = clock.now + timedelta(hours=1)
            for m in ("m1", "m2"):
                await store.queue.defer(m, later, ErrorInfo("TRANSPORT_TIMEOUT", "对端超时"))
            await store.queue.hold("m3", actor="operator:张")
            # Listing: oldest first, a page at a time, by destination or state.
            assert [e.message_id for e in await store.queue.entries(limit=2)] == ["m1", "m2"]
            assert [e.message_id for e in await store.queue.entries(after="m2")] == ["m3", "c1"]
            assert [e.message_id for e in await store.queue.entries(states=["hold"])] == ["m3"]
            assert [e.message_id for e in await store.queue.entries(destination="node-c")] == ["c1"]
            assert await store.queue.oldest_unfinished() == {"node-b": start, "node-c": start + timedelta(seconds=30)}
            # Retry now: one row, then all waiting rows of a destination; a held row is not waiting.
            assert await store.queue.retry_now(actor="operator:张", message_id="m1") == ["m1"]
            assert (await store.queue.get("m1")).next_attempt_at == clock.now
            assert (await store.queue.get("m1")).state == "deferred" and await store.queue.next_due_at("node-b") == clock.now
            with pytest.raises(StoreConflict):
                await store.queue.retry_now(actor="operator:张", message_id="m3")
            assert await store.queue.retry_now(actor="operator:张", destination="node-b") == ["m1", "m2"]
            assert [e.message_id for e in await store.queue.load_active_window("node-b", 10)] == ["m1", "m2"]
            assert await store.queue.retry_now(actor="operator:张", destination="node-x") == []
            retries = [(e.actor, e.subjects) for e in await store.audit.events(limit=500) if e.action == "queue.retry"]
            assert retries == [("operator:张", {"message_id": "m1"}),
                               ("operator:张", {"message_id": "m1", "node": "node-b"}),
                               ("operator:张", {"message_id": "m2", "node": "node-b"}),
                               ("operator:张", {"node": "node-x"})]
            await store.queue.mark_sent(["m1", "m2"], b"r")
            await store.queue.release("m3", actor="operator:张")
            await store.queue.mark_sent(["m3"], b"r")
            assert await store.queue.oldest_unfinished() == {"node-c": start + timedelta(seconds=30)}
    asyncio.run(main())


@pytest.mark.sqlite_only  # PostgreSQL's window is claimed under its leases (node/store/postgresql/leases.py)
def test_an_empty_window_is_answered_without_a_write_transaction(tmp_path):
    """A destination's queue asks for its window at every round, most often with nothing in flight and
    nothing due: that answer takes no write transaction (no BEGIN IMMEDIATE and COMMIT on the writer's
    thread, no writers' lock taken from the clerks' group commits); a due row is claimed as before."""
    async def main():
        clock = FakeClock()
        async with open_store(tmp_path, clock) as store:
            opened = []
            transaction = store.db.transaction
            store.db.transaction = lambda *a, **k: (opened.append(1), transaction(*a, **k))[1]
            assert await store.queue.load_active_window("node-b", 10) == []  # nothing at all
            await store.enqueue(await queued_item(store, "m1"))
            await store.enqueue(await queued_item(store, "other", "node-c"))
            opened.clear()
            [entry] = await store.queue.load_active_window("node-b", 10)  # due: claimed
            assert (entry.message_id, entry.state, len(opened)) == ("m1", "active", 1)
            [again] = await store.queue.load_active_window("node-b", 10)  # in flight: the same row
            assert (again.message_id, len(opened)) == ("m1", 2)
            retry_at = clock.now + timedelta(seconds=30)
            await store.queue.defer("m1", retry_at, ErrorInfo("TRANSPORT_TIMEOUT", "对端超时"))
            opened.clear()
            assert await store.queue.load_active_window("node-b", 10) == []  # deferred, not due yet
            assert opened == []
            clock.now = retry_at
            assert [e.message_id for e in await store.queue.load_active_window("node-b", 10)] == ["m1"]
            assert len(opened) == 1
            await store.queue.mark_sent(["m1"], b"receipt")
            opened.clear()
            assert await store.queue.load_active_window("node-b", 10) == []  # sent: nothing left
            assert opened == []
            assert [e.message_id for e in await store.queue.load_active_window("node-c", 10)] == ["other"]
    asyncio.run(main())
