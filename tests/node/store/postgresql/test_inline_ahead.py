"""node.store.postgresql.inline_ahead: a group commit's inline blobs written before the writers' lock.

On the test PostgreSQL (tests/postgres_server.py), two workers (two stores under two worker names on one
database) where the race needs them. What an operator relies on: while another worker holds the
writers' lock the blobs of a batch are already on their way (durable) and the receipts still wait
for the lock; a collection between the two transactions loses no blob; two workers writing the same
blobs at once both finish (no deadlock); rows written ahead that no row ever names are collected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import random
import time
from pathlib import Path

import psycopg
import pytest

from exchange_protocol.errors import EnvelopeReplayed
from node.errors import BlobMissing
from node.store.postgresql import Store
from node.store.postgresql.db import WRITER_LOCK
from tests.node.store.test_inline_blobs import _inline
from tests.support import FakeClock

_INSERT = "INSERT INTO inline_blobs (digest, size, data) VALUES (%s, %s, %s) ON CONFLICT (digest) DO NOTHING"
PATIENCE_S = 120.0  # a loaded 2-core machine (load 10+) may be slow; the happy path takes well under 1 s


async def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {PATIENCE_S} s for {what}"
        await asyncio.sleep(0.02)


def _count(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM inline_blobs").fetchone()[0])


def test_a_batch_s_blobs_are_durable_before_the_lock_and_its_receipts_wait_for_the_lock(tmp_path: Path,
                                                                                       postgres_server) -> None:
    dsn = postgres_server.new_database()

    async def main() -> None:
        store = await Store.open(tmp_path, dsn=dsn, clock=FakeClock())
        envs = [_inline(f"m-{i}", size=30_000) for i in range(4)]
        try:
            with psycopg.connect(dsn, autocommit=True) as other:  # another worker's turn, held
                other.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK,))
                accepting = asyncio.gather(*(store.accept_inbound(e) for e in envs))
                await _wait_for(lambda: store.inline.written_ahead == 8, "the blobs written ahead")
                assert await asyncio.to_thread(_count, dsn) == 8  # committed, seen by another connection
                await asyncio.sleep(0.2)
                assert not accepting.done()  # no receipt before the batch's own rows commit
                other.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))
            results = await asyncio.wait_for(accepting, PATIENCE_S)
            assert all(r.new for r in results)
            assert store.inline.written_locked == 0  # nothing sent again under the lock
            for env in envs:
                for digest, data in env.inline:
                    assert await store.blobs.read_bytes(digest) == data
        finally:
            await store.close()
    asyncio.run(main())


def test_a_collection_between_the_two_transactions_loses_no_blob(tmp_path: Path, postgres_server) -> None:
    """Another worker's housekeeping deletes the rows written ahead (no row names them yet) before the
    batch takes the lock: the locked transaction finds them gone and writes them itself."""
    dsn = postgres_server.new_database()

    async def main() -> None:
        a = await Store.open(tmp_path, dsn=dsn, clock=FakeClock(), worker="a")
        b = await Store.open(tmp_path, dsn=dsn, clock=FakeClock(), worker="b")
        env = _inline("m-collected")
        collected: list[str] = []
        ahead = a.inline.ahead

        async def ahead_then_collected(blobs):
            await ahead(blobs)
            collected.extend(await b.inline.collect())

        a.inline.ahead = ahead_then_collected  # type: ignore[method-assign]
        try:
            assert (await a.accept_inbound(env)).new
            assert sorted(collected) == sorted(d for d, _ in env.inline)  # they were gone, for a moment
            assert a.inline.written_locked == 2
            for digest, data in env.inline:
                assert await b.blobs.read_bytes(digest) == data
            assert await b.inline.collect() == []  # named by the received row now: kept
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_two_workers_writing_the_same_blobs_at_once_both_finish(tmp_path: Path, postgres_server) -> None:
    """Rounds of two workers writing overlapping blobs, each given them in its own order; and one
    envelope delivered to both at once: one accepts it, the other answers with the same receipt."""
    dsn = postgres_server.new_database()
    rng = random.Random(12)

    async def main() -> None:
        a = await Store.open(tmp_path, dsn=dsn, clock=FakeClock(), worker="a")
        b = await Store.open(tmp_path, dsn=dsn, clock=FakeClock(), worker="b")
        try:
            union: set[str] = set()
            for _ in range(15):
                blobs = [(hashlib.sha256(data).hexdigest(), data) for data in (os.urandom(8_000) for _ in range(40))]
                mine, theirs = rng.sample(blobs, 30), rng.sample(blobs, 30)
                union |= {d for d, _ in mine + theirs}
                await asyncio.wait_for(asyncio.gather(a.inline.ahead(mine), b.inline.ahead(theirs)), PATIENCE_S)
            assert await a.inline.count() == len(union)
            env = _inline("m-both")
            first, second = await asyncio.wait_for(asyncio.gather(a.accept_inbound(env), b.accept_inbound(env)),
                                                   PATIENCE_S)
            assert sorted([first.new, second.new]) == [False, True] and first.receipt == second.receipt
            for digest, data in env.inline:
                assert await a.blobs.read_bytes(digest) == data
        finally:
            await a.close()
            await b.close()
    asyncio.run(main())


def test_rows_written_ahead_that_no_row_names_are_collected(tmp_path: Path, postgres_server) -> None:
    """A crash between the two transactions (or a replay's, or a rolled-back batch's blobs) leaves rows
    no row names: the next collection deletes them, and a restart's recovery is one."""
    dsn = postgres_server.new_database()

    async def main() -> None:
        store = await Store.open(tmp_path, dsn=dsn, clock=FakeClock())
        kept, orphan = _inline("m-kept"), _inline("m-orphan")
        try:
            assert (await store.accept_inbound(kept)).new
            await store.inline.ahead(orphan.inline)  # …and the worker dies before its locked transaction
        finally:
            await store.close()
        assert _count(dsn) == 4
        store = await Store.open(tmp_path, dsn=dsn, clock=FakeClock())
        try:
            assert sorted(store.last_recovery.orphan_blobs_removed) == sorted(d for d, _ in orphan.inline)
            assert await store.inline.count() == 2
            assert await store.blobs.read_bytes(kept.blob_digest) == kept.inline[0][1]
        finally:
            await store.close()
    asyncio.run(main())


def test_a_replay_in_a_batch_keeps_nothing_of_its_own_and_leaves_a_shared_blob_to_the_new_envelope(
        tmp_path: Path, postgres_server) -> None:
    """One batch: a new envelope, and a replay (a known id, other bytes) whose payload is the new
    envelope's. Both were written ahead; the replay's own envelope bytes are gone at COMMIT, the payload
    they share stays with the envelope that names it."""
    dsn = postgres_server.new_database()

    async def main() -> None:
        store = await Store.open(tmp_path, dsn=dsn, clock=FakeClock())
        try:
            assert (await store.accept_inbound(_inline("m-1"))).new
            new, other = _inline("m-2"), _inline("m-1")
            replay = dataclasses.replace(other, payload_digest=new.payload_digest, inline=(other.inline[0], new.inline[1]))
            batches = store.committer.batches
            fresh, refused = await asyncio.gather(store.accept_inbound(new), store.accept_inbound(replay),
                                                  return_exceptions=True)
            assert store.committer.batches == batches + 1  # one group commit for both
            assert fresh.new and isinstance(refused, EnvelopeReplayed)
            assert store.inline.written_ahead == 2 + 3  # m-1's; then m-2's two and the replay's own envelope
            assert await store.blobs.read_bytes(new.payload_digest) == new.inline[1][1]
            with pytest.raises(BlobMissing):
                await store.blobs.read_bytes(replay.blob_digest)
            assert await store.inline.count() == 4
        finally:
            await store.close()
    asyncio.run(main())


def test_a_locked_batch_forgetting_a_replay_s_blob_does_not_deadlock_with_another_write_ahead(
        tmp_path: Path, postgres_server, caplog) -> None:
    """Another worker's write-ahead holds a new envelope's blobs X uncommitted and is about to insert
    a replay's Y; this worker's locked batch must write X itself (collected after its own write-ahead)
    and delete Y (the replay's, no row names it). Inserting first and deleting after, the locked
    batch waits for the other and the other for nobody: no cycle for the deadlock detector to break
    by aborting the batch (it would, after deadlock_timeout, with the writers' lock held)."""
    dsn = postgres_server.new_database()

    async def main() -> None:
        a = await Store.open(tmp_path, dsn=dsn, clock=FakeClock(), worker="a")
        b = await Store.open(tmp_path, dsn=dsn, clock=FakeClock(), worker="b")
        other = await psycopg.AsyncConnection.connect(dsn)  # the other worker's write-ahead, paused midway
        watch = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        new, replay = _inline("m-2"), _inline("m-1")  # m-1 known by then: the replay's bytes are other
        ahead = a.inline.ahead

        async def ahead_then_collected_and_another_writing(blobs):
            await ahead(blobs)
            await b.inline.collect()  # none named yet: all gone
            await b.inline.ahead(replay.inline)  # the replay delivered to b too: its blobs back
            for digest, data in sorted(new.inline):  # the other's first rows, uncommitted
                await other.execute(_INSERT, (digest, len(data), data))

        async def a_waits_for_a_lock() -> bool:
            cursor = await watch.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                         " AND wait_event_type = 'Lock'")
            return (await cursor.fetchone())[0] > 0

        try:
            assert (await a.accept_inbound(_inline("m-1"))).new
            a.inline.ahead = ahead_then_collected_and_another_writing  # type: ignore[method-assign]
            batches = a.committer.batches
            accepting = asyncio.gather(a.accept_inbound(new), a.accept_inbound(replay), return_exceptions=True)
            deadline = time.monotonic() + PATIENCE_S
            while not await a_waits_for_a_lock():  # a's locked batch writing X, waiting for the other's
                assert time.monotonic() < deadline, f"waited {PATIENCE_S} s for a's batch to wait for the other"
                await asyncio.sleep(0.02)
            for digest, data in sorted(replay.inline):  # the other's next rows: Y
                await asyncio.wait_for(other.execute(_INSERT, (digest, len(data), data)), PATIENCE_S)
            await other.commit()
            fresh, refused = await asyncio.wait_for(accepting, PATIENCE_S)
            assert a.committer.batches == batches + 1  # one group commit for both
            assert not [r for r in caplog.records if "group commit" in r.getMessage()]  # not aborted, not retried
            assert fresh.new and isinstance(refused, EnvelopeReplayed)
            for digest, data in new.inline:
                assert await a.blobs.read_bytes(digest) == data
            with pytest.raises(BlobMissing):  # the replay keeps nothing
                await a.blobs.read_bytes(replay.blob_digest)
        finally:
            await other.close()
            await watch.close()
            await a.close()
            await b.close()
    with caplog.at_level(logging.WARNING, logger="gwx.store"):
        asyncio.run(main())
