"""Content-addressed blob store on disk: envelopes and packages, streamed, never held whole.

Layout under ``root``::

    sha256/ab/cdef…   one file per blob, named by its SHA-256 (first two hex digits as a fan-out dir;
                      all 256 made when the store is first opened, so a write never makes one)
    tmp/<random>.part blobs being written
    cache/<digest>    a copy of a small blob kept in the database, for a reader that needs a file

Small blobs may live in the database instead (``inline_blobs``, migration 20: no file at all); the
store sets :attr:`BlobStore.inline` and every read here (``open``, ``read_bytes``, ``size_of``,
``exists``, ``verify_sync``) finds them there when there is no file (``exists`` and ``size_of``
without fetching the bytes).

Writing (the Postfix order — bytes durable before anything refers to them):
    chunks → ``tmp/….part`` (hashing as they pass) → fsync the file → check the digest against the
    one announced, if any → rename to ``sha256/ab/cdef…`` → fsync that fan-out directory (all 256
    exist from the store's first opening, so a write makes none; one found deleted is remade and
    ``sha256/`` fsynced). Only then does the caller commit a row naming the
    digest, and only after that commit does it acknowledge. A crash before the rename leaves a
    ``.part`` file (removed at start-up); a crash after it leaves a blob no row names (garbage,
    collected by :meth:`BlobStore.collect_garbage`).

Blocking work (writes, fsyncs, hashing of large buffers, reads) runs on a dedicated thread pool so
the event loop keeps serving. The pool is deliberately wide: concurrent fsyncs on ext4/xfs are
merged into one journal commit, so 32 envelopes fsynced at once cost little more than one
(measured here: ~280 file+dir fsyncs/s one at a time, ~8,000/s from 32 threads). Memory stays bounded
by one write buffer (:data:`WRITE_BUFFER`) per blob in flight, whatever the blob's size.

Garbage collection keeps any blob a row refers to (the ``blob_refs`` view) and any blob younger than
a grace period: a blob that was just written but whose row is not yet committed must not vanish.
Re-putting an existing blob refreshes its mtime for the same reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import secrets
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from exchange_protocol import digests
from node.errors import BadDigest, BlobDigestMismatch, BlobMissing, BlobTooLarge
from pki.keystore import fsync_dir

WRITE_BUFFER = 256 * 1024
READ_CHUNK = 256 * 1024
_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")

BlobSource = bytes | bytearray | memoryview | AsyncIterable[bytes] | Iterable[bytes] | BinaryIO


@dataclass(frozen=True)
class BlobRef:
    digest: str  # lower-case hex SHA-256 of the exact bytes
    size: int


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise BadDigest("not a SHA-256 digest (64 lower-case hex characters)", digest=repr(digest)[:80])
    return digest


class InlineReader(Protocol):
    """The database's small blobs (``inline_blobs``), read blocking from any thread; a database that
    refuses the read raises :class:`~node.errors.StoreError` (``STORE_BLOB_UNREADABLE``)."""

    def __call__(self, digest: str) -> bytes | None: ...  # the bytes (None: not there)
    def size(self, digest: str) -> int | None: ...  # without fetching them
    def has(self, digest: str) -> bool: ...
    def close(self) -> None: ...


class _TempBlob:
    """One blob being written: a temp file, its running hash and size. Methods run in a worker thread."""

    def __init__(self, store: BlobStore, max_size: int | None) -> None:
        self._store = store
        self._max_size = max_size
        self.path = store.tmp_dir / f"{secrets.token_hex(12)}.part"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self._max_size is not None and self.size > self._max_size:
            raise BlobTooLarge(f"the data is more than the limit of {self._max_size} bytes", limit=self._max_size)
        self._hash.update(data)  # releases the GIL for large buffers
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def finish(self, expected_digest: str | None) -> BlobRef:
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        digest = self._hash.hexdigest()
        if expected_digest is not None and digest != expected_digest:
            raise BlobDigestMismatch("the SHA-256 of the data is not the digest announced",
                                     expected=expected_digest, actual=digest)
        final = self._store._path(digest)
        try:
            if os.stat(final).st_size == self.size:
                # Same content already stored: keep the old file, refresh its age for the GC grace period.
                # (A stored copy of another size is damaged: the fresh, verified bytes replace it below.)
                os.unlink(self.path)
                os.utime(final)
                return BlobRef(digest, self.size)
        except FileNotFoundError:
            pass
        try:
            os.replace(self.path, final)
        except FileNotFoundError:  # its fan-out directory is gone (the store makes all 256 at start)
            self._store.make_fan_out(digest[:2])
            os.replace(self.path, final)
        fsync_dir(final.parent)
        return BlobRef(digest, self.size)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class BlobStore:
    """Blobs under ``root``; see the module docstring for the layout and the durability order."""

    def __init__(self, root: str | Path, *, max_size: int | None = None, threads: int = 32) -> None:
        self.root = Path(root)
        self.blob_dir = self.root / "sha256"
        self.tmp_dir = self.root / "tmp"
        self.cache_dir = self.root / "cache"
        for directory in (self.root, self.blob_dir, self.tmp_dir, self.cache_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.cache_dir.chmod(0o700)  # made by an older version with the umask's mode, perhaps
        self.max_size = max_size
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gwx-blob")
        # Small blobs kept in the database and never written as files; set by the store, called from
        # any thread (blocking).
        self.inline: InlineReader | None = None
        if len(os.listdir(self.blob_dir)) < 256:  # every fan-out directory made once, fsynced once
            for i in range(256):
                (self.blob_dir / f"{i:02x}").mkdir(mode=0o700, exist_ok=True)
            fsync_dir(self.blob_dir)

    def make_fan_out(self, name: str) -> None:
        """(Re)make one fan-out directory, durably (blocking)."""
        (self.blob_dir / name).mkdir(mode=0o700, exist_ok=True)
        fsync_dir(self.blob_dir)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def _run(self, fn: Callable[..., object], *args: object) -> Awaitable[object]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- paths --------------------------------------------------------------------------------
    def path_for(self, digest: str) -> Path:
        """A file holding blob ``digest``, for a reader that needs a path (the clerk's pages and
        downloads): the blob's own file, or for a small blob kept in the database a cache copy under
        ``cache/`` (written once, not fsynced: the database is its truth, recovery drops the copies).
        Readers that can take a file object use :meth:`open`."""
        path = self._path(digest)
        if self.inline is None or path.is_file():
            return path
        cached = self.cache_dir / digest
        try:
            os.utime(cached)  # handed out again: young for clear_cache's grace, as a fresh copy is
            return cached
        except FileNotFoundError:
            pass
        data = self.inline(digest)
        if data is None:
            return path  # the caller's open fails as for any missing blob
        temp = self.tmp_dir / f"{secrets.token_hex(12)}.part"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)  # as blobs are
            with open(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, cached)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return cached

    def _path(self, digest: str) -> Path:
        check_digest(digest)
        return self.blob_dir / digest[:2] / digest[2:]

    def _inline(self, digest: str) -> bytes | None:
        return self.inline(digest) if self.inline is not None else None

    def exists(self, digest: str) -> bool:
        return self._path(digest).is_file() or (self.inline is not None and self.inline.has(digest))

    def size_of(self, digest: str) -> int:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            size = self.inline.size(digest) if self.inline is not None else None
            if size is None:
                raise BlobMissing("no such blob", digest=digest) from None
            return size

    def iter_digests(self) -> Iterator[str]:
        """Every blob on disk (names that are not digests — stray files — are skipped)."""
        for fan_out in sorted(self.blob_dir.iterdir()):
            if not (fan_out.is_dir() and len(fan_out.name) == 2):
                continue
            for entry in sorted(os.listdir(fan_out)):
                digest = fan_out.name + entry
                if _DIGEST_RE.match(digest):
                    yield digest

    # --- writing ------------------------------------------------------------------------------
    async def put(self, source: BlobSource, *, expected_digest: str | None = None,
                  max_size: int | None = None) -> BlobRef:
        """Store ``source`` durably; returns its digest and size once file and name are fsynced.

        ``source`` may be bytes, an async iterator of chunks (e.g. an aiohttp request body), a sync
        iterator of chunks, or a binary file object. With ``expected_digest`` the bytes must hash to
        it or nothing is stored (:class:`BlobDigestMismatch`).
        """
        if expected_digest is not None:
            check_digest(expected_digest)
        limit = self.max_size if max_size is None else max_size
        if isinstance(source, AsyncIterable):
            return await self._put_async(source, expected_digest, limit)
        return await self._run(self.put_sync, source, expected_digest, limit)  # type: ignore[return-value]

    def put_sync(self, source: BlobSource, expected_digest: str | None = None,
                 max_size: int | None = None) -> BlobRef:
        """Blocking variant of :meth:`put` for threads and command-line tools."""
        temp = _TempBlob(self, max_size)
        try:
            if isinstance(source, (bytes, bytearray, memoryview)):
                temp.write(source)
            elif hasattr(source, "read"):
                while chunk := source.read(WRITE_BUFFER):  # type: ignore[union-attr]
                    temp.write(chunk)
            else:
                for chunk in source:  # type: ignore[union-attr]
                    temp.write(chunk)
            return temp.finish(expected_digest)
        except BaseException:
            temp.abort()
            raise

    async def _put_async(self, source: AsyncIterable[bytes], expected_digest: str | None,
                         limit: int | None) -> BlobRef:
        temp: _TempBlob = await self._run(_TempBlob, self, limit)  # type: ignore[assignment]
        try:
            buffer = bytearray()
            async for chunk in source:
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER:
                    full, buffer = buffer, bytearray()
                    await self._run(temp.write, full)
            if buffer:
                await self._run(temp.write, buffer)
            return await self._run(temp.finish, expected_digest)  # type: ignore[return-value]
        except BaseException:
            await asyncio.shield(self._run(temp.abort))
            raise

    # --- reading ------------------------------------------------------------------------------
    def open(self, digest: str) -> BinaryIO:
        """A binary file object for streaming reads (blocking; wrap reads in a thread if large)."""
        try:
            return open(self._path(digest), "rb")  # the caller closes it
        except FileNotFoundError:
            data = self._inline(digest)
            if data is None:
                raise BlobMissing("no such blob", digest=digest) from None
            return io.BytesIO(data)

    async def chunks(self, digest: str, chunk_size: int = READ_CHUNK) -> AsyncIterable[bytes]:
        """Stream a blob's bytes in chunks, reading in the worker pool."""
        handle: BinaryIO = await self._run(self.open, digest)  # type: ignore[assignment]
        try:
            while chunk := await self._run(handle.read, chunk_size):
                yield chunk  # type: ignore[misc]
        finally:
            handle.close()

    async def read_bytes(self, digest: str) -> bytes:
        """The whole blob in memory: for small blobs only (receipts, tests)."""
        def read() -> bytes:
            with self.open(digest) as handle:
                return handle.read()
        return await self._run(read)  # type: ignore[return-value]

    def digest_sync(self, digest: str, algorithm: str) -> str:
        """The blob's ``algorithm`` digest: its name for SHA-256 (the content address), else its
        bytes read and hashed (SM3 on a 国密 network). Blocking: a worker thread's."""
        if algorithm == digests.SHA256:
            return digest
        hasher = digests.new(algorithm)
        with self.open(digest) as handle:
            while chunk := handle.read(READ_CHUNK):
                hasher.update(chunk)
        return hasher.hexdigest()

    def verify_sync(self, digest: str) -> BlobRef:
        """Re-hash a stored blob; raises :class:`BlobMissing` or :class:`BlobDigestMismatch`."""
        hasher = hashlib.sha256()
        size = 0
        with self.open(digest) as handle:
            while chunk := handle.read(READ_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
        if hasher.hexdigest() != digest:
            raise BlobDigestMismatch("the stored blob has been altered", digest=digest, actual=hasher.hexdigest())
        return BlobRef(digest, size)

    async def verify(self, digest: str) -> BlobRef:
        return await self._run(self.verify_sync, digest)  # type: ignore[return-value]

    # --- cleaning -----------------------------------------------------------------------------
    def cleanup_temp(self, older_than_seconds: float = 0.0) -> int:
        """Remove ``.part`` leftovers of interrupted writes; at start-up (nothing in flight) use 0."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in os.scandir(self.tmp_dir):
            if entry.is_file() and entry.stat().st_mtime <= cutoff:
                os.unlink(entry.path)
                removed += 1
        return removed

    def clear_cache(self, older_than_seconds: float = 0.0) -> int:
        """Remove cache copies of database-kept blobs (:meth:`path_for`); at start-up use 0."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in os.scandir(self.cache_dir):
            try:  # another worker (PostgreSQL) may clear the same copy meanwhile
                if entry.is_file() and entry.stat().st_mtime <= cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def remove(self, digest: str) -> bool:
        try:
            os.unlink(self._path(digest))
            return True
        except FileNotFoundError:
            return False

    async def collect_garbage(self, referenced: Callable[[list[str]], Awaitable[set[str]]], *,
                              grace_seconds: float, batch: int = 500) -> list[str]:
        """Delete blobs no row refers to and older than ``grace_seconds``; returns their digests.

        ``referenced(digests)`` answers which of a batch are still in use, so memory stays bounded
        by ``batch`` however many blobs there are.
        """
        cutoff = time.time() - grace_seconds
        removed: list[str] = []
        pending: list[str] = []

        async def flush() -> None:
            keep = await referenced(pending)
            for digest in pending:
                if digest in keep:
                    continue
                path = self._path(digest)
                try:
                    if path.stat().st_mtime > cutoff:
                        continue
                except FileNotFoundError:
                    continue
                if self.remove(digest):
                    removed.append(digest)
            pending.clear()

        for digest in self.iter_digests():
            pending.append(digest)
            if len(pending) >= batch:
                await flush()
        if pending:
            await flush()
        return removed
