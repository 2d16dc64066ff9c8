"""Several workers of one node on one PostgreSQL database (node.store.postgresql.leases): two stores
open on the same database under two worker names, on one hand-moved clock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from pathlib import Path

import psycopg
import pytest

from adapters.outbox import Outbox
from exchange_protocol.envelope import HeaderDraft, MessageType
from node.errors import StoreConflict, StoreContended, StoreError
from node.store import Draft, ErrorInfo
from node.store.postgresql import Store
from node.store.sqlite.db import to_db_time
from tests.adapters.support import Recorder, receive
from tests.node.store.conftest import put_envelope, queued_item
from tests.node.store.test_exchange import UNIT_A, UNIT_B
from tests.support import FakeClock

LEASE = 10.0
PATIENCE_S = 120.0  # a loaded 2-core machine (load 10+) may be slow; each wait ends in well under 1 s when quiet


async def _workers(tmp_path: Path, dsn: str, clock: FakeClock) -> tuple[Store, Store]:
    a = await Store.open(tmp_path, dsn=dsn, clock=clock, lease_seconds=LEASE, worker="a")
    b = await Store.open(tmp_path, dsn=dsn, clock=clock, lease_seconds=LEASE, worker="b")
    return a, b


def test_a_received_envelope_is_claimed_by_one_worker_and_taken_over_when_its_lease_ends(tmp_path, postgres_server):
    dsn, clock = postgres_server.new_database(), FakeClock()

    async def main() -> None:
        a, b = await _workers(tmp_path, dsn, clock)
        try:
            for n in range(3):
                await a.accept_inbound(await put_envelope(a, f"in-{n}"))
            assert [r.message_id for r in await a.messages.pending_inbound(10)] == ["in-0", "in-1", "in-2"]
            assert await b.messages.pending_inbound(10) == []  # a holds them
            assert await b.messages.next_inbound_retry() == clock() + dt.timedelta(seconds=LEASE)
            # a retry a defers is due at its time for a, its own lease holding nothing back
            await a.messages.defer_inbound("in-2", clock() + dt.timedelta(seconds=2), ErrorInfo("X", "later"))
            assert await a.messages.next_inbound_retry() == clock()  # in-0 and in-1 are a's to apply now
            await a.messages.mark_inbound("in-1", "done")
            await a.messages.mark_inbound("in-0", "done")
            assert await a.messages.next_inbound_retry() == clock() + dt.timedelta(seconds=2)
            # a dies (its leases are not renewed)
            clock.advance(seconds=LEASE + 1)
            assert [r.message_id for r in await b.messages.pending_inbound(10)] == ["in-2"]
            assert await a.messages.pending_inbound(10) == []  # now b's
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_an_envelope_applied_by_one_worker_is_not_applied_again_by_another(tmp_path, postgres_server):
    dsn, clock = postgres_server.new_database(), FakeClock()

    async def main() -> None:
        a, b = await _workers(tmp_path, dsn, clock)
        try:
            await a.accept_inbound(await put_envelope(a, "in-1"))
            await a.messages.pending_inbound(10)
            clock.advance(seconds=LEASE + 1)  # a's lease ran out while it was still applying
            await b.messages.pending_inbound(10)
            async with a.transaction() as tx:  # a's application commits first
                await a.audit.append(tx, "node", "doc.applied", {"message_id": "in-1"})
                await a.messages.mark_inbound("in-1", "done", tx=tx)
            with pytest.raises(StoreConflict):  # b's, the same envelope again, rolls back whole
                async with b.transaction() as tx:
                    await b.audit.append(tx, "node", "doc.applied", {"message_id": "in-1"})
                    await b.messages.mark_inbound("in-1", "done", tx=tx)
            events = [e.action for e in await b.audit.events(message_id="in-1", limit=50)]
            assert events.count("doc.applied") == 1 and events.count("envelope.done") == 1
            assert (await b.messages.get_received("in-1")).state == "done"
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_queued_envelopes_are_sent_by_one_worker_and_taken_over_when_its_lease_ends(tmp_path, postgres_server):
    dsn, clock = postgres_server.new_database(), FakeClock()

    async def main() -> None:
        a, b = await _workers(tmp_path, dsn, clock)
        try:
            for n in range(3):
                await a.enqueue(await queued_item(a, f"out-{n}", "county-b"))
            window = await a.queue.load_active_window("county-b", 2)
            assert [e.message_id for e in window] == ["out-0", "out-1"]
            # b tops the window up with what a did not take, never a's rows
            assert [e.message_id for e in await b.queue.load_active_window("county-b", 3)] == ["out-2"]
            assert await b.queue.next_due_at("county-b") == clock() + dt.timedelta(seconds=LEASE)
            await a.queue.mark_sent(["out-0"], b"receipt")
            clock.advance(seconds=LEASE + 1)  # a died with out-1 in flight
            assert "county-b" in await b.queue.destinations_due()
            assert {e.message_id for e in await b.queue.load_active_window("county-b", 3)} == {"out-1", "out-2"}
            assert (await b.queue.get("out-0")).state == "sent"
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_one_process_at_a_time_runs_under_a_worker_name(tmp_path, postgres_server):
    dsn, clock = postgres_server.new_database(), FakeClock()

    async def main() -> None:
        a = await Store.open(tmp_path, dsn=dsn, clock=clock, worker="a")
        try:
            with pytest.raises(StoreError, match="another worker named 'a'"):
                await Store.open(tmp_path, dsn=dsn, clock=clock, worker="a")  # after 5 s of patience
            tool = await Store.open(tmp_path, dsn=dsn, clock=clock, worker="a", recover=False)  # gwx commands
            await tool.close()
        finally:
            await a.close()
        again = await Store.open(tmp_path, dsn=dsn, clock=clock, worker="a")  # its name is free once closed
        await again.close()
    asyncio.run(main())


def test_a_worker_starting_leaves_the_fresh_blobs_another_worker_is_writing(tmp_path, postgres_server):
    dsn, clock = postgres_server.new_database(), FakeClock()

    async def main() -> None:
        a = await Store.open(tmp_path, dsn=dsn, clock=clock, worker="a")
        try:
            written = await a.blobs.put(b"an envelope whose row a commits in a moment")
            (a.blobs.tmp_dir / "y.part").write_bytes(b"an envelope a is receiving")
            b = await Store.open(tmp_path, dsn=dsn, clock=clock, worker="b")  # recovers at its start
            await b.close()
            assert b.last_recovery.orphan_blobs_removed == () and b.last_recovery.temp_files_removed == 0
            assert a.blobs.exists(written.digest) and (a.blobs.tmp_dir / "y.part").exists()
        finally:
            await a.close()
    asyncio.run(main())


def test_an_adapter_outbox_row_is_delivered_by_one_worker_and_taken_over_when_its_lease_ends(tmp_path,
                                                                                             postgres_server):
    dsn, clock = postgres_server.new_database(), FakeClock()

    async def main() -> None:
        a, b = await _workers(tmp_path, dsn, clock)
        try:
            cursor = await a.adapter_outbox.start_cursor("webhook:1")
            await a.adapter_outbox.fan_out("webhook:1", cursor, cursor + 2, [(cursor + 1, "{}"), (cursor + 2, "{}")])
            first = await a.adapter_outbox.oldest_pending("webhook:1")  # a claims the oldest
            held = await b.adapter_outbox.oldest_pending("webhook:1")
            assert held.id == first.id and held.next_attempt_at == clock() + dt.timedelta(seconds=LEASE)  # b waits
            with pytest.raises(StoreConflict):  # b cannot write an outcome of a's attempt
                await b.adapter_outbox.mark_done(first.id)
            # a's attempt outlasts its lease: holding() renews it (every third of the lease, real time)
            a.lease.seconds = b.lease.seconds = 0.3
            assert (await a.adapter_outbox.oldest_pending("webhook:1")).id == first.id  # a's again, for 0.3 s
            async with a.adapter_outbox.holding(first.id):
                for _ in range(2):  # 0.4 s of the clock in all: past the lease taken, not past a renewed one
                    clock.advance(seconds=0.2)
                    await asyncio.sleep(0.15)
                again = await b.adapter_outbox.oldest_pending("webhook:1")
                assert again.next_attempt_at > clock()  # still a's
            clock.advance(seconds=1)  # a died: its lease ran out, unrenewed
            taken = await b.adapter_outbox.oldest_pending("webhook:1")
            assert taken.id == first.id and taken.next_attempt_at <= clock()
            with pytest.raises(StoreConflict):  # a, late, finds the row b's
                await a.adapter_outbox.mark_done(first.id)
            await b.adapter_outbox.mark_done(first.id)
            second = await a.adapter_outbox.oldest_pending("webhook:1")  # the next row, anybody's: a's now
            assert second.seq == cursor + 2
            await a.adapter_outbox.mark_done(second.id)
            assert [r.state for r in await b.adapter_outbox.rows("webhook:1")] == ["done", "done"]
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_a_draft_is_sealed_by_one_worker_and_taken_over_when_its_lease_ends(tmp_path, postgres_server):
    """A worker sealing (or giving up) a destination's drafts claims them: the other worker finds none of
    them until that lease ends (the first died); a late swap by the first then finds the draft gone."""
    dsn, clock = postgres_server.new_database(), FakeClock()

    async def main() -> None:
        a, b = await _workers(tmp_path, dsn, clock)
        try:
            ids = []
            for n in range(3):
                header = HeaderDraft.new(MessageType.DOCUMENT, "node-a", "node-b", UNIT_A, (UNIT_B,), clock(),
                                         dt.timedelta(days=3))
                ref = await a.blobs.put(f"payload {n}".encode())
                async with a.transaction() as tx:  # its retry window ends before a lease does
                    await a.drafts.add_draft(tx, Draft(header, ref.digest, ref.size, clock(),
                                                       clock() + dt.timedelta(seconds=LEASE / 2)))
                ids.append(header.message_id)
            ids.sort()
            assert [d.header.message_id for d in await a.drafts.drafts_for("node-b", 2)] == ids[:2]
            assert [d.header.message_id for d in await b.drafts.drafts_for("node-b")] == ids[2:]
            assert [d.header.message_id for d in await a.drafts.drafts_for("node-b")] == ids[:2]  # its own only
            # The rerouter's read sees every draft, whoever holds it, and claims none.
            assert [d.header.message_id for d in await a.drafts.every_draft_for("node-b")] == ids
            assert [d.header.message_id for d in await b.drafts.drafts_for("node-b")] == ids[2:]
            clock.advance(seconds=LEASE / 2 + 1)
            assert [d.header.message_id for d in await a.drafts.expired_drafts("node-b", clock())] == ids[:2]
            assert [d.header.message_id for d in await b.drafts.expired_drafts("node-b", clock())] == ids[2:]
            clock.advance(seconds=LEASE + 1)  # a died holding two (renewed when it asked): b takes them over
            assert [d.header.message_id for d in await b.drafts.drafts_for("node-b")] == ids
            async with b.transaction() as tx:
                await b.drafts.delete_draft(tx, ids[0])
            with pytest.raises(StoreContended):  # a, back late, finds it sealed by b
                async with a.transaction() as tx:
                    await a.drafts.delete_draft(tx, ids[0])
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


@contextlib.asynccontextmanager
async def _claimed_drafts(tmp_path: Path, dsn: str, clock: FakeClock, n: int = 3):
    """Two workers, and ``n`` drafts to node-b that worker a added and claimed (a builder round's):
    yields a, b and the drafts' ids, sorted (the order they are claimed in); closes both at the end."""
    a, b = await _workers(tmp_path, dsn, clock)
    try:
        ids = []
        for i in range(n):
            header = HeaderDraft.new(MessageType.DOCUMENT, "node-a", "node-b", UNIT_A, (UNIT_B,), clock(),
                                     dt.timedelta(days=3))
            ref = await a.blobs.put(f"payload {i}".encode())
            async with a.transaction() as tx:
                await a.drafts.add_draft(tx, Draft(header, ref.digest, ref.size, clock(), None))
            ids.append(header.message_id)
        ids.sort()
        assert [d.header.message_id for d in await a.drafts.drafts_for("node-b")] == ids
        yield a, b, ids
    finally:
        await a.close()
        await b.close()


async def _until_logged(caplog, text: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not any(text in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, f"waited {PATIENCE_S} s for a log line saying {text!r}"
        await asyncio.sleep(0.05)


def test_a_draft_lease_renewal_that_fails_keeps_renewing_and_says_so(tmp_path, postgres_server, caplog):
    """A builder round's renewal that cannot have its rows in time (another transaction holds them
    locked) is logged and tried again: the round's drafts stay this worker's past the lease it took."""
    dsn, clock = postgres_server.new_database(), FakeClock()

    async def main() -> None:
        async with _claimed_drafts(tmp_path, dsn, clock) as (a, b, ids):
            await a.lease.side.fetchall("SELECT set_config('lock_timeout', '50ms', false)")  # a gives up soon
            a.lease.seconds = 0.6  # a renewal every 0.2 s (real time)
            with psycopg.connect(dsn) as other:
                other.execute("SELECT message_id FROM drafts FOR UPDATE")  # a transaction holds the rows
                async with a.drafts.holding(ids):
                    await _until_logged(caplog, "renewing this worker's lease failed")
                    other.rollback()
                    clock.advance(seconds=LEASE + 1)  # past the lease a took when it claimed them
                    deadline = time.monotonic() + PATIENCE_S
                    while (until := _lease_until(other)) <= to_db_time(clock()):  # renewed again, on the new time
                        assert time.monotonic() < deadline, "the lease was not renewed after a renewal failed"
                        await asyncio.sleep(0.05)
                    assert await b.drafts.drafts_for("node-b") == []  # still a's
                    assert until > to_db_time(clock())
    with caplog.at_level(logging.WARNING, logger="gwx.store"):
        asyncio.run(main())


def _lease_until(conn: psycopg.Connection) -> str:
    """The earliest lease end of the drafts (read by another connection: what the other workers see)."""
    return str(conn.execute("SELECT MIN(lease_until) FROM drafts").fetchone()[0])


def test_a_draft_taken_over_during_a_round_is_named_in_the_log(tmp_path, postgres_server, caplog):
    """A round's loop stalled past its lease: another worker took one of its drafts over. The next
    renewal keeps the others and names the lost one (both may seal it; the second swap is given up);
    drafts the round swaps meanwhile are not news."""
    dsn, clock = postgres_server.new_database(), FakeClock()

    async def main() -> None:
        async with _claimed_drafts(tmp_path, dsn, clock) as (a, b, ids):
            clock.advance(seconds=LEASE + 1)
            assert [d.header.message_id for d in await b.drafts.drafts_for("node-b", 1)] == ids[:1]
            async with a.transaction() as tx:  # …and a's round swapped one of its own meanwhile
                await a.drafts.delete_draft(tx, ids[2])
            a.lease.seconds = 0.6
            async with a.drafts.holding(ids):
                await _until_logged(caplog, "lease on them is gone")
                with psycopg.connect(dsn, autocommit=True) as other:
                    deadline = time.monotonic() + PATIENCE_S
                    while _lease_until(other) <= to_db_time(clock()):  # ids[1] renewed (ids[0] b's: longer)
                        assert time.monotonic() < deadline, "a's remaining draft was not renewed"
                        await asyncio.sleep(0.05)
            told = [r.getMessage() for r in caplog.records if "lease on them is gone" in r.getMessage()]
            assert told and all(ids[0] in m and ids[1] not in m and ids[2] not in m for m in told)
            assert [d.header.message_id for d in await b.drafts.drafts_for("node-b")] == ids[:1]  # b's own only
    with caplog.at_level(logging.WARNING, logger="gwx.store"):
        asyncio.run(main())


def test_an_attempt_keeps_its_lease_while_its_own_worker_holds_the_writers_lock(tmp_path, postgres_server):
    """A worker's own writes do not hold up its lease renewals: a webhook attempt runs while the same
    worker's long turn holds the writers' lock (a group commit on a loaded machine, or many queued up
    behind one another) for one and a half leases, and the row stays the attempt's all along — the
    other worker sees it held, and does not send the event too. (Renewed in a transaction of the
    worker's writer, the renewals waited behind that turn and the lease ran out within it.)"""
    dsn, lease = postgres_server.new_database(), 6.0  # real time: a renewal every 2 s, 4 s of slack each

    async def main() -> None:
        a = await Store.open(tmp_path, dsn=dsn, lease_seconds=lease, worker="a")
        b = await Store.open(tmp_path, dsn=dsn, lease_seconds=lease, worker="b")
        try:
            cursor = await a.adapter_outbox.start_cursor("webhook:1")
            await a.adapter_outbox.fan_out("webhook:1", cursor, cursor + 1, [(cursor + 1, "{}")])
            row = await a.adapter_outbox.oldest_pending("webhook:1")
            with psycopg.connect(dsn, autocommit=True) as other:
                async with a.adapter_outbox.holding(row.id), a.transaction():
                    await asyncio.sleep(1.5 * lease)
                    until = str(other.execute("SELECT lease_until FROM adapter_outbox WHERE id = %s",
                                              (row.id,)).fetchone()[0])
                    assert until > to_db_time(dt.datetime.now(dt.UTC)), "the lease ran out while its worker wrote"
                held = await b.adapter_outbox.oldest_pending("webhook:1")
                assert held.next_attempt_at > dt.datetime.now(dt.UTC)  # still a's: b waits
                await a.adapter_outbox.mark_done(row.id)
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_an_attempt_s_outcome_written_behind_a_long_turn_keeps_the_lease_until_written(tmp_path, postgres_server):
    """The outcome of an attempt waits its turn on the worker's writer like any write. The lease is
    renewed until the outcome is written, not only while the consumer is asked: the consumer answers
    while the same worker's long turn (one and a half leases) holds the writers' lock, and the other
    worker never finds the row free meanwhile — the event is delivered once, the row done."""
    dsn, lease = postgres_server.new_database(), 6.0  # real time: a renewal every 2 s, 4 s of slack each

    async def main() -> None:
        a = await Store.open(tmp_path, dsn=dsn, lease_seconds=lease, worker="a")
        b = await Store.open(tmp_path, dsn=dsn, lease_seconds=lease, worker="b")
        try:
            in_turn, turns = asyncio.Event(), []

            async def long_turn() -> None:
                async with a.transaction():
                    in_turn.set()
                    await asyncio.sleep(1.5 * lease)

            class Answering(Recorder):
                async def deliver(self, event):
                    await super().deliver(event)
                    turns.append(asyncio.ensure_future(long_turn()))
                    await in_turn.wait()  # answered: the outcome's write now waits behind the turn

            consumer = Answering("webhook:1")
            outbox = Outbox(a, "node-a", a.clock, rand=lambda: 0.0)
            await outbox.add(consumer)
            await receive(a, "D1")
            assert await outbox.fan_out("webhook:1") == 1
            row = await a.adapter_outbox.oldest_pending("webhook:1")  # claimed by a: its lease
            attempt = asyncio.ensure_future(outbox.attempt("webhook:1", row))
            await in_turn.wait()
            while not attempt.done():  # the other worker looks, as its loop would, all through the turn
                held = await b.adapter_outbox.oldest_pending("webhook:1")
                assert held is None or held.next_attempt_at > dt.datetime.now(dt.UTC), "the lease ran out"
                await asyncio.sleep(0.5)
            assert attempt.result() is True and len(consumer.delivered) == 1
            assert [(r.state, r.attempts) for r in await b.adapter_outbox.rows("webhook:1")] == [("done", 1)]
            await asyncio.gather(*turns)
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())
