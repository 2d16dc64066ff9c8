"""node.store.sqlite.inline_blobs: small blobs committed with their row, in the database for good.

On both backends. What a node's operator relies on: a receipt goes out once the batch's commit
made the envelope's bytes durable (in the database), no file is ever written for them, every
reader of ``BlobStore`` reads them as any blob, a kill -9 after the receipts loses none, and
garbage collection drops them with the last row naming them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from exchange_protocol.errors import EnvelopeReplayed
from node.errors import BlobMissing, StoreError
from node.store import BlobRef, InboundEnvelope
from tests.node.store.conftest import open_store, running_dsn

ROOT = Path(__file__).resolve().parents[3]


def _inline(message_id: str, size: int = 3000, origin: str = "node-a") -> InboundEnvelope:
    """As the acceptor keeps a small envelope: no file, its bytes and its payload's with the row."""
    envelope = message_id.encode() + os.urandom(size)
    payload = b"payload of " + envelope
    env_ref = BlobRef(hashlib.sha256(envelope).hexdigest(), len(envelope))
    payload_ref = BlobRef(hashlib.sha256(payload).hexdigest(), len(payload))
    return InboundEnvelope(message_id, env_ref.digest, env_ref.digest, origin, b"receipt:" + message_id.encode(),
                           "document", env_ref.size, payload_ref.digest,
                           inline=((env_ref.digest, envelope), (payload_ref.digest, payload)))


def _files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]


def test_inline_bytes_commit_with_the_row_never_get_a_file_and_read_as_any_blob(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            envs = [_inline(f"m-{i}") for i in range(5)]
            results = await asyncio.gather(*(store.accept_inbound(e) for e in envs))
            assert all(r.new for r in results)
            again = await store.accept_inbound(envs[0])  # a peer's retry: the original receipt, nothing added
            assert not again.new and await store.inline.count() == 10
            for e in envs:
                for digest, data in e.inline:
                    assert await store.blobs.read_bytes(digest) == data
                    assert store.blobs.exists(digest) and store.blobs.size_of(digest) == len(data)
                    assert (await store.blobs.verify(digest)).size == len(data)
                    with store.blobs.open(digest) as handle:
                        assert handle.read(7) == data[:7]
            assert _files(tmp_path) == []  # read every way there is: still no file
            cached = store.blobs.path_for(envs[0].payload_digest)  # a reader that needs a path: a cache copy
            assert cached.read_bytes() == envs[0].inline[1][1] and cached.parent == store.blobs.cache_dir
        assert _files(tmp_path) == [cached]
        async with open_store(tmp_path) as store:  # a restart keeps the bytes, drops the cache copy
            # (on PostgreSQL only once it is an hour old: another live worker may be serving it)
            assert _files(tmp_path) == ([cached] if running_dsn() else []) and await store.inline.count() == 10
            assert await store.blobs.read_bytes(envs[4].blob_digest) == envs[4].inline[0][1]
    asyncio.run(main())


def test_a_replayed_envelope_keeps_nothing(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            await store.accept_inbound(_inline("m-1"))
            other = _inline("m-1")  # the same id, other bytes
            with pytest.raises(EnvelopeReplayed):
                await store.accept_inbound(other)
            assert await store.inline.count() == 2
            with pytest.raises(BlobMissing):
                await store.blobs.read_bytes(other.blob_digest)
    asyncio.run(main())


def test_garbage_collection_drops_inline_blobs_no_row_names_and_their_cache_copies(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            kept, gone = _inline("m-1"), _inline("m-2")
            for e in (kept, gone):
                await store.accept_inbound(e)
            cached = store.blobs.path_for(gone.payload_digest)  # a clerk's page read it meanwhile
            async with store.transaction() as tx:
                await tx.execute("DELETE FROM received WHERE message_id = ?", ("m-2",))
            removed = await store.collect_garbage(grace_seconds=0)
            assert set(removed) == {d for d, _ in gone.inline} and not cached.exists()
            assert await store.inline.count() == 2
            assert await store.blobs.read_bytes(kept.payload_digest) == kept.inline[1][1]
            with pytest.raises(BlobMissing):
                await store.blobs.read_bytes(gone.payload_digest)
    asyncio.run(main())


def test_a_database_that_cannot_be_read_is_a_typed_error_and_no_read_blocks_the_loop(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            env = _inline("m-1")
            await store.accept_inbound(env)
            reader, loop_thread, threads = store.blobs.inline, threading.get_ident(), []

            def recording(digest: str) -> bytes | None:
                threads.append(threading.get_ident())
                return reader(digest)
            try:
                store.blobs.inline = recording
                assert b"".join([c async for c in store.blobs.chunks(env.blob_digest)]) == env.inline[0][1]
                assert threads and loop_thread not in threads  # the database is read in a worker thread
                # The database gone (a server down, a file unreadable): the store's typed error, not the driver's.
                gone = "host=127.0.0.1 port=1 dbname=gone user=gone" if running_dsn() else tmp_path / "gone" / "x.db"
                store.blobs.inline = broken = type(reader)(gone)
                for read in (lambda: store.blobs.read_bytes(env.blob_digest),
                             lambda: asyncio.to_thread(store.blobs.size_of, env.blob_digest)):
                    with pytest.raises(StoreError) as caught:
                        await read()
                    assert caught.value.code == "STORE_BLOB_UNREADABLE"
                broken.close()
            finally:
                store.blobs.inline = reader
    asyncio.run(main())


def test_a_cache_copy_handed_out_again_is_young_and_clearing_tolerates_a_vanished_copy(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            env = _inline("m-1")
            await store.accept_inbound(env)
            cached = store.blobs.path_for(env.blob_digest)
            old = time.time() - 7200
            os.utime(cached, (old, old))  # first handed out two hours ago
            assert store.blobs.path_for(env.blob_digest) == cached  # and again now: a clerk downloads it
            assert store.blobs.clear_cache(3600) == 0 and cached.read_bytes() == env.inline[0][1]
            os.utime(cached, (old, old))
            real_scandir = os.scandir

            def racing(path):  # another worker removes the copy between the listing and the stat
                entries = list(real_scandir(path))
                cached.unlink()
                return iter(entries)
            os.scandir = racing
            try:
                assert store.blobs.clear_cache(3600) == 0
            finally:
                os.scandir = real_scandir
    asyncio.run(main())


def test_cache_copies_are_private_and_a_failed_copy_leaves_no_part_file(tmp_path):
    (tmp_path / "blobs" / "cache").mkdir(parents=True, mode=0o755)  # left by an older version
    os.chmod(tmp_path / "blobs" / "cache", 0o755)

    async def main():
        async with open_store(tmp_path) as store:
            assert stat.S_IMODE(store.blobs.cache_dir.stat().st_mode) == 0o700
            env = _inline("m-1")
            await store.accept_inbound(env)
            cached = store.blobs.path_for(env.blob_digest)
            assert stat.S_IMODE(cached.stat().st_mode) == 0o600  # as a blob's own file
            real_replace = os.replace

            def failing(src, dst):
                raise OSError(28, "No space left on device")
            os.replace = failing
            try:
                with pytest.raises(OSError):
                    store.blobs.path_for(env.payload_digest)
            finally:
                os.replace = real_replace
            assert list(store.blobs.tmp_dir.iterdir()) == []
    asyncio.run(main())


def test_exists_and_size_of_do_not_fetch_the_bytes(tmp_path):
    """Recovery asks exists() of every new received row: a question, not a download of each blob."""
    async def main():
        async with open_store(tmp_path) as store:
            env = _inline("m-1", size=200_000)
            await store.accept_inbound(env)
            reader = store.blobs.inline

            class NoFetch:
                def __call__(self, digest):
                    raise AssertionError(f"the whole of {digest} fetched")
                size, has, close = reader.size, reader.has, reader.close
            store.blobs.inline = NoFetch()
            try:
                for digest, data in env.inline:
                    assert await asyncio.to_thread(store.blobs.exists, digest)
                    assert await asyncio.to_thread(store.blobs.size_of, digest) == len(data)
                missing = hashlib.sha256(b"never stored").hexdigest()
                assert not await asyncio.to_thread(store.blobs.exists, missing)
                with pytest.raises(BlobMissing):
                    await asyncio.to_thread(store.blobs.size_of, missing)
                report = await store.recover()  # every new received row's blobs asked after, none fetched
                assert report.corrupt_received == ()
            finally:
                store.blobs.inline = reader
    asyncio.run(main())


def _read_lines(stream, sink: list[str], done: threading.Event) -> None:
    for line in stream:
        sink.append(line.decode().strip())
        if line.startswith(b"DONE"):
            done.set()
    done.set()


def test_inline_envelopes_survive_kill_9_after_their_receipts(tmp_path):
    """kill -9 after the receipts: no file of any of them on disk, and the restarted store finds
    every one (no received envelope corrupt, every byte as acknowledged)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    dsn = [running_dsn()] if running_dsn() else []
    child = subprocess.Popen([sys.executable, "-m", "tests.node.store.inline_child", str(tmp_path), "40", *dsn],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: list[str] = []
    done = threading.Event()
    reader = threading.Thread(target=_read_lines, args=(child.stdout, lines, done))
    reader.start()
    assert done.wait(timeout=60), f"the child did not finish: {lines[-3:]}"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    reader.join(timeout=10)
    acked = [line.split()[1:] for line in lines if line.startswith("ACK ")]
    assert len(acked) == 40
    assert _files(tmp_path) == []  # the bytes are in the database only

    async def check():
        async with open_store(tmp_path) as store:
            report = store.last_recovery
            assert report.corrupt_received == ()
            rows = await store.db.fetchall("SELECT message_id, blob_digest, payload_digest FROM received")
            stored = {r[0]: (r[1], r[2]) for r in rows}
            for message_id, env_digest, payload_digest in acked:
                assert stored[message_id] == (env_digest, payload_digest)
                for digest in (env_digest, payload_digest):
                    assert (await store.blobs.verify(digest)).digest == digest
    asyncio.run(check())
