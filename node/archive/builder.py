"""Building one document's archive package from what the node holds (:mod:`exchange_protocol.archive`).

What goes in, read from the store:

* the sealed package's blob, byte for byte (streamed);
* for every message about the document — found in the audit excerpt (subjects and details name the
  message), the outgoing links kept for it (the document and the notices sent) and the inbox row
  (the delivery) — the signed envelope header as it travelled (read from the envelope blob kept,
  the frame's head only: the encrypted payload stays out) with its CMS, and the signed transport
  receipt for it (the peer's for what we sent, ours for what we received);
* the audit excerpt (:meth:`node.store.sqlite.audit.AuditLog.excerpt`), the node's CA chain, and the
  GB/T 33480 index with the per-unit handling.

* every unit-signed 签收/退回 statement the node holds about the document
  (``store.evidence.notice_evidence``), as signed; the index says how many recipients had signed for
  or returned it (``statements.expected``) and how many of them have a statement here (``found``,
  ``missing`` names the others: a statement made before the ``evidence`` work, or never received).

Evidence the node no longer holds (a queue row purged after ``purge_finished``, a blob collected)
is left out, and the index says how many messages were found without their envelope. The ZIP is
written in a worker thread to a temporary file in ``DATA_DIR/archives`` (one a crash left behind is
removed by the next build once a day old); the time-stamp over the
manifest is asked asynchronously between writing the manifest and closing the file.

The archive's digest is the network's (:func:`exchange_protocol.digests.for_profile` of the node's
trust policy): SM3 on a 国密 network for the manifest's file list, the index's ``package_sm3`` and the
time-stamp's imprint, SHA-256 on an international one. The index is written after the package, whose
digest it names (on a 国密 network the blob's SHA-256 name is not it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exchange_protocol import archive as A
from exchange_protocol import digests
from exchange_protocol.envelope import MessageType, decode_header
from exchange_protocol.frame import read_head
from exchange_protocol.model import DocumentMetadata
from node.archive.time_stamps import TimeStamps
from node.context import NodeContext
from node.store.evidence import NoticeEvidence
from node.store.interfaces import NodeStore
from pki.certificates import pem
from pki.errors import GwxError

# A recipient in one of these states signed for (签收, then perhaps 登记) or returned (退回) the document:
# a unit-signed statement of it is expected.
_ACTED = frozenset({"signed_for", "registered", "returned"})


@dataclass(frozen=True)
class BuiltArchive:
    path: Path  # a temporary file: the caller streams it, then deletes it
    sha256: str
    size: int
    files: int
    timestamp_time: dt.datetime
    tsa: str
    messages: int
    without_envelope: int


@dataclass(frozen=True)
class Subject:
    """What is archived: one document as one unit of this node sees it."""

    doc_id: str
    side: str  # outbox | inbox
    unit: str
    package_digest: str
    meta: DocumentMetadata
    handling: tuple[dict[str, Any], ...]
    inbox_message_id: str | None = None
    reason: str | None = None  # given when the handling is not finished (the clerk says it is)


async def build(ctx: NodeContext, store: NodeStore, stamps: TimeStamps, subject: Subject) -> BuiltArchive:
    stamps.where()  # no TSA to ask (ARCHIVE_NO_TSA): said before anything is read or written
    excerpt = await store.audit.excerpt(subject.doc_id)
    message_ids = await _message_ids(store, subject, excerpt["events"])
    evidence: list[tuple[str, bytes, bytes, bytes | None]] = []  # (message id, header, signature, receipt)
    missing = 0
    for mid in message_ids:
        found = await _evidence_of(store, mid)
        if found:
            evidence += found
        else:
            missing += 1
    units = {h["unit"] for h in subject.handling}  # a received document's archive: this unit's statement only
    statements = [s for s in await store.evidence.notice_evidence(subject.doc_id) if s.unit in units]
    acted = {h["unit"] for h in subject.handling if h.get("status") in _ACTED}
    found = acted & {s.unit for s in statements}
    archived = {"messages": len(message_ids), "message_ids": sorted(message_ids), "without_envelope": missing,
                "statements": {"expected": len(acted), "found": len(found), "missing": sorted(acted - found)}}
    if subject.reason:
        archived["reason"] = subject.reason
    directory = ctx.config.data_dir / "archives"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    await asyncio.to_thread(_clear_leftovers, directory)
    fd, name = tempfile.mkstemp(prefix=".building-", suffix=".gwxa", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            writer = A.ArchiveWriter(out, digests.for_profile(ctx.trust_policy().profile))
            try:
                manifest = await asyncio.to_thread(_write_files, writer, ctx, store, subject, archived, excerpt,
                                                   evidence, statements)
                token, stamp = await stamps.token_for(manifest, writer.hash_name)
                await asyncio.to_thread(writer.close_with_token, token)
            except BaseException:
                writer.close()
                raise
            out.flush()
            os.fsync(out.fileno())
        digest, size = await asyncio.to_thread(_digest, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return BuiltArchive(path, digest, size, len(json.loads(manifest)["files"]), stamp.gen_time,
                        stamp.tsa_certificate.subject.rfc4514_string(), len(message_ids), missing)


def _write_files(writer: A.ArchiveWriter, ctx: NodeContext, store: NodeStore, subject: Subject,
                 archived: dict[str, Any], excerpt: dict[str, Any],
                 evidence: Iterable[tuple[str, bytes, bytes, bytes | None]],
                 statements: Iterable[NoticeEvidence]) -> bytes:
    with store.blobs.open(subject.package_digest) as package:
        entry = writer.add(A.PACKAGE_NAME, package, stored=True)  # a ZIP already: stored, byte-identical
    index = A.gbt33480_index(subject.meta, package_digest=entry.digest, hash_name=entry.hash_name, side=subject.side,
                             units=[subject.unit], handling=subject.handling, archived_at=ctx.clock(),
                             node_id=ctx.node_id)
    index["归档"].update(archived)
    writer.add(A.INDEX_NAME, json.dumps(index, ensure_ascii=False, indent=1).encode("utf-8"))
    for mid, header, signature, receipt in evidence:
        A.add_signed_header(writer, header, signature, mid)
        if receipt is not None:
            A.add_receipt(writer, receipt, mid)
    for i, item in enumerate(statements):  # unit codes are ASCII letters and digits: safe in a member name
        A.add_statement(writer, item.statement, f"{i:04d}.{item.unit}.{item.type}.{item.side}")
    writer.add(A.AUDIT_NAME, json.dumps(excerpt, ensure_ascii=False).encode("utf-8"))
    chain = b"".join(pem(c) for c in (*ctx.intermediates, *ctx.trust.roots))
    writer.add(A.CHAIN_NAME, chain)
    return writer.write_manifest(subject.doc_id, ctx.clock())


async def _message_ids(store: NodeStore, subject: Subject, events: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for event in events:
        for part in (event["subjects"], event["details"]):
            mid = part.get("message_id") if isinstance(part, dict) else None
            if isinstance(mid, str):
                seen.setdefault(mid)
    for kind in MessageType:
        for link in await store.links.links_for(subject.doc_id, kind.value):
            seen.setdefault(link.message_id)
    if subject.inbox_message_id:
        seen.setdefault(subject.inbox_message_id)
    return list(seen)


async def _evidence_of(store: NodeStore, mid: str) -> list[tuple[str, bytes, bytes, bytes | None]]:
    """The signed header of ``mid`` and its receipt: as sent (queue) and as received (inbound)."""
    found = []
    sent = await store.queue.get(mid)
    if sent is not None:
        header = await asyncio.to_thread(_header_in, store, sent.blob_digest, mid)
        if header is not None:
            found.append((f"{mid}.sent", *header, sent.receipt))
    received = await store.messages.get_received(mid)
    if received is not None:
        header = await asyncio.to_thread(_header_in, store, received.blob_digest, mid)
        if header is not None:
            found.append((f"{mid}.received", *header, received.receipt))
    return found


def _header_in(store: NodeStore, blob_digest: str, mid: str) -> tuple[bytes, bytes] | None:
    """The header naming ``mid`` (exact bytes) and its signature, from a stored frame's head."""
    try:
        with store.blobs.open(blob_digest) as f:
            head = read_head(f)
    except (OSError, GwxError):
        return None  # collected, or not a frame: left out (and counted)
    for signed in head.signed if head is not None else ():
        try:
            if decode_header(signed.header_bytes).message_id == mid:
                return signed.header_bytes, signed.signature
        except GwxError:
            continue
    return None


LEFTOVER_AGE = 24 * 3600  # seconds: no archive takes a day to build and hand out


def _clear_leftovers(directory: Path) -> None:
    """Archives a crash left half-built or half-sent (each is deleted once handed out)."""
    cutoff = time.time() - LEFTOVER_AGE
    for path in directory.glob(".building-*.gwxa"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()


def _digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(A.CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
