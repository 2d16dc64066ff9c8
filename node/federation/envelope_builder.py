"""Turning a destination's drafts into envelopes, once its encryption certificate is known.

A draft is a message whose payload is durable but whose envelope cannot be sealed yet: that needs
the peer's encryption certificate, fetched from ``GET /peer/v1/node`` over mutual TLS, verified
against our root and the peer's node id, and cached in the store (re-judged every
:data:`REVERIFY_SECONDS` so a revocation or an expiry is noticed). Each envelope is sealed once,
stored as a blob, and swapped for a queue row in one transaction with the draft's deletion — so
every retry resends the *same bytes* and the receiver's dedupe recognises them.

A draft that can never be built (its payload blob gone or altered, a header refused — also a row
an older gwx wrote that the header check now refuses) is dropped, one at a time and without
holding up the others, and the document rows it carried turn ``failed`` with the reason; so is one
whose retry window closed before the peer's certificate could be had. An error the kinds' table
says to retry (:func:`node.error_kinds.disposition`: our HSM away, our own CRL stale) leaves the
draft where it is: it is raised to the destination's loop, which backs off and tries again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_envelope, seal_stream
from exchange_protocol.states import Event
from node.documents.tracking import apply_transport_outcome
from node.error_kinds import Disposition, disposition
from node.errors import BlobDigestMismatch, QueueExpired, StoreCorrupt
from node.federation.transport import PeerCredentials, verify_peer_credentials
from node.store import Draft, ErrorInfo, OutboundItem, StoredPeerCredentials, UnreadableDraft
from pki.ca import pem
from pki.errors import GwxError

if TYPE_CHECKING:
    from node.federation.outbound import Outbound

log = logging.getLogger("gwx.outbound")

SMALL_PAYLOAD = 4 * 1024 * 1024  # sealed in memory below this; streamed through a spool file above
REVERIFY_SECONDS = 300  # cached peer certificates are judged again (expiry, revocation) this often


class EnvelopeBuilder:
    """Seals the drafts of one destination; keeps its verified credentials between rounds."""

    def __init__(self, outbound: Outbound, destination: str) -> None:
        self.outbound = outbound
        self.destination = destination
        self._credentials: PeerCredentials | None = None
        self._verified_at = dt.datetime.min.replace(tzinfo=dt.UTC)

    def forget_credentials(self) -> None:
        """The peer answered as another node: fetch its certificates afresh next time."""
        self._credentials = None

    async def has_drafts(self) -> bool:
        return bool(await self.outbound.store.drafts.drafts_for(self.destination, 1))

    async def build_drafts(self) -> None:
        """Seal every draft of the destination into a queued envelope (or drop it, if it never can be)."""
        store, ctx = self.outbound.store, self.outbound.ctx
        while rows := await store.drafts.drafts_for(self.destination, 64):
            drafts = await self._set_aside_unreadable(rows)
            if not drafts:
                continue
            creds = await self._peer_credentials()
            recipient = Recipient(creds.encryption_certificate)
            for d in drafts:
                try:
                    ref = await asyncio.to_thread(_build_envelope, store.blobs, d, ctx.sender, recipient)
                except FileNotFoundError as exc:  # its payload is gone: unbuildable for good
                    await self.drop_draft(d.header.message_id, exc)
                    continue
                except GwxError as exc:
                    if not _for_good(exc):
                        raise  # ours to fix (an HSM away, a stale CRL): the draft waits, the loop backs off
                    await self.drop_draft(d.header.message_id, exc)
                    continue
                async with store.transaction() as tx:
                    await store.queue.enqueue(
                        OutboundItem(d.header.message_id, self.destination, ref.digest, ref.size,
                                     d.header.type.value, expires_at=d.expires_at), tx=tx)
                    await store.drafts.delete_draft(tx, d.header.message_id)

    async def drop_expired(self, now: dt.datetime) -> None:
        """Drafts never built within their retry window (the peer's certificate could not be had)."""
        rows = await self.outbound.store.drafts.expired_drafts(self.destination, now)
        for d in await self._set_aside_unreadable(rows):
            await self.drop_draft(d.header.message_id,
                                  QueueExpired("retry window closed before the peer could be reached"))

    async def _set_aside_unreadable(self, rows: list[Draft | UnreadableDraft]) -> list[Draft]:
        """Drop the rows the header check refuses (e.g. an older gwx's bounce with no recipient unit);
        return the drafts that can be built."""
        for row in rows:
            if isinstance(row, UnreadableDraft):
                await self.drop_draft(row.message_id, row.error)
        return [row for row in rows if isinstance(row, Draft)]

    async def drop_draft(self, message_id: str, exc: Exception) -> None:
        store = self.outbound.store
        info = ErrorInfo.of(exc) if isinstance(exc, GwxError) else ErrorInfo("STORE_CORRUPT", repr(exc))
        log.error("cannot build %s: %s", message_id, info.message,
                  extra={"destination": self.destination, "message_id": message_id, "code": info.code})
        async with store.transaction() as tx:
            await store.drafts.delete_draft(tx, message_id)
            await store.audit.append(tx, "node", "draft.failed", {"message_id": message_id},
                                     {"error": info.code, "message": info.message})
            await apply_transport_outcome(store, message_id, Event.FAILED, at=self.outbound.ctx.clock(),
                                          actor=f"node:{self.destination}", reason=f"{info.code}: {info.message}",
                                          tx=tx)

    async def _peer_credentials(self) -> PeerCredentials:
        ctx, store = self.outbound.ctx, self.outbound.store
        if self._credentials is not None:
            if (ctx.clock() - self._verified_at).total_seconds() < REVERIFY_SECONDS:
                return self._credentials
            self._credentials = None  # re-judged below: revoked or expired since is noticed
        stored = await store.peer_credentials.get(self.destination)
        now = ctx.clock()
        if stored is not None:
            try:
                self._credentials = verify_peer_credentials(self.destination, stored.signing_cert,
                                                            stored.encryption_cert, [stored.chain] if stored.chain else [],
                                                            ctx.trust, now, ctx.revocation)
                self._verified_at = now
                return self._credentials
            except GwxError as exc:  # expired or revoked since: fetch afresh
                log.warning("cached credentials of %s no longer valid: %s", self.destination, exc,
                            extra={"destination": self.destination})
        creds = await self.outbound.client.fetch_credentials(self.outbound.peer(self.destination), ctx.trust, now,
                                                             ctx.revocation)
        await store.peer_credentials.save(StoredPeerCredentials(
            self.destination, pem(creds.signing_certificate).decode(), pem(creds.encryption_certificate).decode(),
            b"".join(pem(c) for c in creds.chain).decode(), now))
        self._credentials, self._verified_at = creds, now
        return creds


def _for_good(error: GwxError) -> bool:
    """Whether a draft that failed to build with ``error`` can never be built: the error kinds' table
    decides (:func:`node.error_kinds.disposition`), except that a damaged payload blob (an internal
    error, retried elsewhere) does not heal by waiting."""
    return isinstance(error, StoreCorrupt) or disposition(error) is Disposition.GIVE_UP


def _build_envelope(blobs, d: Draft, sender, recipient: Recipient):
    """Encrypt, sign and store one envelope (in a worker thread); returns the blob reference."""
    src_path = blobs.path_for(d.payload_digest)
    if d.payload_size <= SMALL_PAYLOAD:
        plaintext = src_path.read_bytes()
        if hashlib.sha256(plaintext).hexdigest() != d.payload_digest:
            raise BlobDigestMismatch(f"payload blob of {d.header.message_id} does not match its digest")
        return blobs.put_sync(seal_envelope(d.header, plaintext, sender, recipient).data)
    with open(src_path, "rb") as src, tempfile.TemporaryFile(dir=blobs.tmp_dir) as spool:
        _, prefix = seal_stream(d.header, src, d.payload_size, spool, sender, recipient)
        spool.seek(0)

        def chunks() -> Iterator[bytes]:
            yield prefix
            while chunk := spool.read(1024 * 1024):
                yield chunk

        return blobs.put_sync(chunks())
