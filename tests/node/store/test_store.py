"""node.store.sqlite.store: recovery from disk (orphans, missing blobs, in-flight rows) and kill -9 safety."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from node.store import OutboundItem
from tests.node.store.conftest import open_store, put_envelope, queued_item, running_dsn

ROOT = Path(__file__).resolve().parents[3]


def test_recovery_requeues_active_marks_missing_blobs_corrupt_and_collects_orphans(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            for m in ("ok", "lost", "flying"):
                await store.enqueue(await queued_item(store, m))
            await store.queue.load_active_window("node-b", 1)  # "ok" now active (in flight)
            env = await put_envelope(store, "in-1")
            await store.accept_inbound(env)
            orphan = await store.blobs.put(b"written, then the process died before its row committed")
            lost_digest = (await store.queue.get("lost")).blob_digest
            blobs = store.blobs
        (blobs.tmp_dir / "x.part").write_bytes(b"interrupted write")
        for left in (blobs.tmp_dir / "x.part", blobs.path_for(orphan.digest)):  # the crash was two hours ago
            os.utime(left, (time.time() - 7200, time.time() - 7200))  # (PostgreSQL's workers keep an hour)
        blobs.path_for(lost_digest).unlink()
        blobs.path_for(env.blob_digest).unlink()

        async with open_store(tmp_path) as store:
            report = store.last_recovery
            assert report.temp_files_removed == 1
            assert report.requeued == 1 and (await store.queue.get("ok")).state == "incoming"
            assert report.corrupt_queue == ("lost",)
            lost = await store.queue.get("lost")
            assert lost.state == "corrupt" and lost.last_error.code == "STORE_BLOB_MISSING"
            assert report.corrupt_received == ("in-1",)
            assert (await store.messages.get_received("in-1")).state == "corrupt"
            assert report.orphan_blobs_removed == (orphan.digest,)
            assert not store.blobs.exists(orphan.digest)
            assert (await store.queue.get("flying")).state == "incoming"
            assert await store.audit.verify_chain() > 0
    asyncio.run(main())


def test_group_commit_batches_concurrent_accepts_and_isolates_a_bad_request(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            envs = [await put_envelope(store, f"m-{i}") for i in range(200)]
            before = store.db.commits
            results = await asyncio.gather(*(store.accept_inbound(e) for e in envs))
            assert all(r.new for r in results)
            assert store.db.commits - before < 50  # 200 acceptances, a handful of transactions
            # a duplicate enqueue fails alone, the rest of its batch commits
            item = await queued_item(store, "q-1")
            await store.enqueue(item)
            fresh = [await queued_item(store, f"q-{i}") for i in range(2, 6)]
            outcomes = await asyncio.gather(store.enqueue(item), *(store.enqueue(f) for f in fresh),
                                            return_exceptions=True)
            assert getattr(outcomes[0], "code", None) == "STORE_DUPLICATE"
            assert outcomes[1:] == [None] * 4
            assert (await store.queue.depth())["node-b"]["incoming"] == 5
    asyncio.run(main())


def _read_lines(stream, sink, ready):
    for line in stream:
        sink.append(line.decode().split())
        if line.startswith(b"READY"):
            ready.set()


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    rng = random.Random(20260302)
    acked: dict[str, str] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for run in range(6):
        dsn = [running_dsn()] if running_dsn() else []  # the child opens the same backend's database
        child = subprocess.Popen([sys.executable, "-m", "tests.node.store.crash_child", str(tmp_path), f"r{run}", *dsn],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        lines: list[list[str]] = []
        ready = threading.Event()
        reader = threading.Thread(target=_read_lines, args=(child.stdout, lines, ready))
        reader.start()
        if run % 3 == 2:
            time.sleep(rng.uniform(0.05, 0.8))  # any moment, start-up recovery included
        else:
            ready.wait(timeout=30)
            time.sleep(rng.uniform(0.05, 1.0))  # mid-stream
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        reader.join(timeout=10)
        for parts in lines:
            if parts and parts[0] == "ACK":
                _, message_id, digest, _new = parts
                assert acked.setdefault(message_id, digest) == digest
        asyncio.run(_check_after_crash(tmp_path, acked, run))
    assert len(acked) > 20, f"only {len(acked)} acknowledgements: the test did not exercise much"


async def _check_after_crash(path, acked, run):
    async with open_store(path) as store:
        rows = await store.db.fetchall("SELECT message_id, envelope_digest, blob_digest FROM received")
        stored = {r[0]: (r[1], r[2]) for r in rows}
        assert len(stored) == len(rows)
        missing = [m for m in acked if m not in stored]
        assert not missing, f"acknowledged but lost: {missing[:5]}"
        queued = await store.db.fetchall("SELECT message_id, COUNT(*) FROM queue GROUP BY message_id")
        queue_ids = {r[0]: r[1] for r in queued}
        for message_id, digest in acked.items():
            assert stored[message_id][0] == digest
            assert queue_ids.get(message_id) == 1  # forwarded exactly once
            assert (await store.blobs.verify(stored[message_id][1])).digest == digest
        # whatever the child wrote but never committed is gone; nothing referenced is (PostgreSQL's workers
        # share the blobs and leave fresh ones at start, for another worker may be writing them: gone at
        # the garbage collection an hour later, run here now)
        if running_dsn():
            await store.collect_garbage(grace_seconds=0)
            store.blobs.cleanup_temp(0.0)
        on_disk = set(store.blobs.iter_digests())
        assert await store.referenced(sorted(on_disk)) == on_disk
        assert list(store.blobs.tmp_dir.iterdir()) == []
        assert store.last_recovery.corrupt_queue == () and store.last_recovery.corrupt_received == ()
        await store.audit.verify_chain()
        probe = await store.blobs.put(b"probe %d" % run)
        await store.enqueue(OutboundItem(f"probe-{run}", "node-x", probe.digest, probe.size, "document"))


def test_a_clean_restart_warns_of_nothing_and_a_crash_is_warned_of(tmp_path, caplog):
    async def main():
        async with open_store(tmp_path) as store:
            left = await store.blobs.put(b"a delivered message's payload, its row gone: collected at the next start")
            os.utime(store.blobs.path_for(left.digest), (time.time() - 7200, time.time() - 7200))  # delivered long ago
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gwx"):
            async with open_store(tmp_path) as store:
                assert len(store.last_recovery.orphan_blobs_removed) == 1
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        async with open_store(tmp_path) as store:
            await store.enqueue(await queued_item(store, "flying"))
            await store.queue.load_active_window("node-b", 1)  # in flight when the process "dies"
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gwx"):
            async with open_store(tmp_path) as store:
                assert store.last_recovery.requeued == 1
        assert any(r.levelno == logging.WARNING and "recovered" in r.getMessage() for r in caplog.records)
    asyncio.run(main())
