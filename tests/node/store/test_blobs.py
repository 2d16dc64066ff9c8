"""node.store.blobs: streaming in bounded memory, digest checks, crash leftovers, garbage collection."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
import tracemalloc

import pytest

from node.errors import BadDigest, BlobDigestMismatch, BlobMissing, BlobTooLarge
from node.store.blobs import BlobStore

MIB = 1024 * 1024


def _pattern_chunk(i: int, size: int = 64 * 1024) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest() * (size // 32)


def test_50_mib_async_stream_is_stored_in_bounded_memory(tmp_path):
    total = 50 * MIB
    chunks = total // (64 * 1024)
    expected = hashlib.sha256()
    for i in range(chunks):
        expected.update(_pattern_chunk(i))

    async def source():
        for i in range(chunks):
            yield _pattern_chunk(i)

    async def main():
        blobs = BlobStore(tmp_path / "blobs")
        try:
            tracemalloc.start()
            ref = await blobs.put(source(), expected_digest=expected.hexdigest())
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert ref.size == total and ref.digest == expected.hexdigest()
            # one write buffer plus a chunk or two, not the 50 MiB
            assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB"
            path = blobs.path_for(ref.digest)
            assert path.parent.name == ref.digest[:2] and path.name == ref.digest[2:]
            assert path.stat().st_size == total
            # streaming read back in bounded memory
            tracemalloc.start()
            hasher, n = hashlib.sha256(), 0
            async for chunk in blobs.chunks(ref.digest):
                hasher.update(chunk)
                n += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert n == total and hasher.hexdigest() == ref.digest and peak < 4 * MIB
            assert list(tmp_path.joinpath("blobs", "tmp").iterdir()) == []
        finally:
            blobs.close()
    asyncio.run(main())


def test_sync_sources_bytes_file_and_iterator_give_same_digest(tmp_path):
    data = os.urandom(700_000)
    digest = hashlib.sha256(data).hexdigest()

    async def main():
        blobs = BlobStore(tmp_path / "blobs")
        try:
            a = await blobs.put(data)
            b = await blobs.put(io.BytesIO(data))
            c = await blobs.put(iter([data[:1000], data[1000:]]))
            assert a == b == c and a.digest == digest and a.size == len(data)
            assert await blobs.read_bytes(digest) == data
            assert (await blobs.verify(digest)).size == len(data)
            assert len(list(blobs.iter_digests())) == 1
        finally:
            blobs.close()
    asyncio.run(main())


def test_wrong_expected_digest_stores_nothing(tmp_path):
    async def main():
        blobs = BlobStore(tmp_path / "blobs")
        try:
            with pytest.raises(BlobDigestMismatch) as info:
                await blobs.put(b"the real bytes", expected_digest=hashlib.sha256(b"other").hexdigest())
            assert info.value.details["actual"] == hashlib.sha256(b"the real bytes").hexdigest()
            assert list(blobs.iter_digests()) == []
            assert list(blobs.tmp_dir.iterdir()) == []
        finally:
            blobs.close()
    asyncio.run(main())


def test_size_limit_aborts_stream(tmp_path):
    async def source():
        for _ in range(10):
            yield b"x" * 100_000

    async def main():
        blobs = BlobStore(tmp_path / "blobs", max_size=250_000)
        try:
            with pytest.raises(BlobTooLarge):
                await blobs.put(source())
            assert list(blobs.iter_digests()) == [] and list(blobs.tmp_dir.iterdir()) == []
        finally:
            blobs.close()
    asyncio.run(main())


def test_altered_blob_on_disk_fails_verification(tmp_path):
    async def main():
        blobs = BlobStore(tmp_path / "blobs")
        try:
            ref = await blobs.put(b"sealed document bytes")
            blobs.path_for(ref.digest).write_bytes(b"sealed document bytez")
            with pytest.raises(BlobDigestMismatch):
                await blobs.verify(ref.digest)
            blobs.remove(ref.digest)
            with pytest.raises(BlobMissing):
                await blobs.verify(ref.digest)
        finally:
            blobs.close()
    asyncio.run(main())


@pytest.mark.parametrize("bad", ["../../etc/passwd", "AB" * 32, "ab" * 31, "", "g" * 64])
def test_hostile_digest_never_becomes_a_path(tmp_path, bad):
    blobs = BlobStore(tmp_path / "blobs")
    try:
        with pytest.raises(BadDigest):
            blobs.path_for(bad)
        with pytest.raises(BadDigest):
            blobs.open(bad)
    finally:
        blobs.close()


def test_temp_leftovers_are_removed_and_orphans_collected_after_grace(tmp_path):
    async def main():
        blobs = BlobStore(tmp_path / "blobs")
        try:
            (blobs.tmp_dir / "dead.part").write_bytes(b"half an envelope")
            assert blobs.cleanup_temp() == 1 and list(blobs.tmp_dir.iterdir()) == []

            keep = await blobs.put(b"referenced")
            orphan = await blobs.put(b"orphan")
            young = await blobs.put(b"just written, row not committed yet")
            old = time.time() - 7200
            for ref in (keep, orphan):
                os.utime(blobs.path_for(ref.digest), (old, old))

            async def referenced(digests):
                return {d for d in digests if d == keep.digest}

            removed = await blobs.collect_garbage(referenced, grace_seconds=3600)
            assert removed == [orphan.digest]
            assert blobs.exists(keep.digest) and blobs.exists(young.digest) and not blobs.exists(orphan.digest)
            # re-putting existing content refreshes its age so it survives a GC racing with its row
            os.utime(blobs.path_for(keep.digest), (old, old))
            await blobs.put(b"referenced")
            assert time.time() - blobs.path_for(keep.digest).stat().st_mtime < 60
        finally:
            blobs.close()
    asyncio.run(main())


def test_putting_the_same_content_again_repairs_a_damaged_copy(tmp_path):
    async def main():
        store = BlobStore(tmp_path / "blobs")
        try:
            data = b"an envelope worth keeping " * 100
            ref = await store.put(data)
            path = store.path_for(ref.digest)
            path.write_bytes(data[:10])  # damaged on disk (a truncated copy)
            again = await store.put(data)
            assert again == ref and path.read_bytes() == data
            assert (await store.verify(ref.digest)).size == len(data)
        finally:
            store.close()

    asyncio.run(main())
