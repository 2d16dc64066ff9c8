"""Sending one batch of envelopes to a peer and recording what became of each (Synapse's
``TransactionManager``).

A batch is a slice of the destination's in-flight window (at most ``limits.batch_size`` envelopes
and :data:`BATCH_BYTES`), posted as frames over the keep-alive mutual-TLS session. For each
envelope the peer answers with a signed transport receipt or a refusal:

- a receipt that verifies (our trust, the envelope's digest, the peer's node id) marks the row
  ``sent`` and the document's recipients 已送达 in one transaction; one signed by a certificate
  other than the peer's we cached says the peer renewed, and its certificates are fetched again;
- a refusal whose code's kind gives up (:func:`node.error_kinds.gives_up_on_code`) bounces it at once;
  one saying the peer cannot open it (:data:`STALE_RECIPIENT_CODES`: it renewed its encryption key
  and the overlap is over) also makes the destination fetch the peer's certificates afresh;
- anything else — a transient refusal, a receipt that does not verify — defers it to the time
  :func:`exchange_protocol.retry.next_attempt` gives, or bounces it once its retry window is over.

If the request fails as a whole (the peer unreachable, a 5xx, a garbled answer), every envelope of
the batch is deferred the same way and the error is raised for the destination's retry limiter.
A bounce turns the rows of the document the envelope carried ``failed`` with the reason.

Past its retry window an envelope is bounced (:meth:`BatchSender.bounce_expired`) — unless the window
ended while this node was stopped and its header (the window plus a day) is still alive: then it is
sent once more at the restart, and given up only if that one attempt fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from cryptography import x509

from exchange_protocol import digests
from exchange_protocol.envelope import EnvelopeHeader, decode_header
from exchange_protocol.frame import FrameLimits, read_head
from exchange_protocol.retry import GIVE_UP, next_attempt
from exchange_protocol.states import Event
from exchange_protocol.transport_receipt import verify_receipt
from node.documents.tracking import apply_transport_outcome
from node.error_kinds import gives_up_on_code
from node.federation.relay import bounce_draft
from node.federation.reroute import readdress_failed
from node.federation.transport import (
    OutgoingFrame,
    PeerIdentityMismatch,
    PeerProtocolError,
    PeerServerError,
    PeerUnreachable,
)
from node.store import ErrorInfo, QueueEntry
from pki.errors import GwxError

# A peer's answers that say the envelope was sealed for an encryption certificate it no longer holds.
STALE_RECIPIENT_CODES = ("ENV_NO_RECIPIENT_INFO", "ENV_DECRYPTION_FAILED")

if TYPE_CHECKING:
    from node.federation.outbound import Outbound
    from node.store import BlobStore

log = logging.getLogger("gwx.outbound")

BATCH_BYTES = 8 * 1024 * 1024
# Failures of the request as a whole: the peer, not the envelopes, is the problem (back off).
TRANSIENT = (PeerUnreachable, PeerServerError, PeerProtocolError, PeerIdentityMismatch)


def batches(window: list[QueueEntry], max_count: int) -> Iterator[list[QueueEntry]]:
    """The window in order, cut into batches of at most ``max_count`` frames and BATCH_BYTES. The
    rows of one bundle (the headers of a fan-out frame: one blob) stay together in one batch."""
    by_frame: dict[str, list[QueueEntry]] = {}
    for e in window:
        by_frame.setdefault(e.blob_digest, []).append(e)
    batch: list[QueueEntry] = []
    count = size = 0
    for rows in by_frame.values():
        if batch and (count >= max_count or size + rows[0].size > BATCH_BYTES):
            yield batch
            batch, count, size = [], 0, 0
        batch += rows
        count += 1
        size += rows[0].size
    if batch:
        yield batch


def _frames(batch: list[QueueEntry], blobs: BlobStore, limits: FrameLimits,
            digest_algorithm: str = digests.SHA256) -> tuple[list[OutgoingFrame], dict[str, str]]:
    """One frame per blob (the queue rows of a bundle share it), with the message ids of ALL its
    headers in the frame's order — read from the frame itself, since the peer answers every header
    in that order, whether or not each of its rows is in this batch (a row of the bundle already
    sent, or left out by the window); and by blob, the frame's digest the receipts must bind. On an
    international network that is the blob's name (both SHA-256); on a 国密 network the SM3 of the
    frame, read here once more (blob names stay SHA-256: exchange_protocol.digests). Blocking: call
    in a thread."""
    frames, frame_digests = [], {}
    for digest, entry in {e.blob_digest: e for e in batch}.items():
        path = blobs.path_for(digest)
        # "" when it cannot be read: no receipt will verify, and the send fails on the missing file
        frame_digests[digest] = ""
        with contextlib.suppress(OSError, GwxError):
            frame_digests[digest] = blobs.digest_sync(digest, digest_algorithm)
        ids = [header.message_id for header in _headers(path, limits)]
        if entry.message_id not in ids:  # unreadable: send it; the peer's refusal will say why
            ids = [entry.message_id]
        frames.append(OutgoingFrame(ids[0], path, entry.size, tuple(ids[1:])))
    return frames, frame_digests


def _headers(path, limits: FrameLimits) -> list[EnvelopeHeader]:
    """The headers of the frame at ``path``, in its order (none when it cannot be read). Blocking."""
    with contextlib.suppress(OSError, GwxError), open(path, "rb") as f:
        head = read_head(f, limits)
        return [decode_header(s.header_bytes) for s in head.signed] if head is not None else []
    return []


def _header_expires(path, message_id: str, limits: FrameLimits) -> dt.datetime | None:
    """The ``expires`` of ``message_id``'s header in the frame at ``path`` (None: unreadable). Blocking."""
    return next((h.expires for h in _headers(path, limits) if h.message_id == message_id), None)


class BatchSender:
    """Sends batches to one destination and records each envelope's outcome."""

    def __init__(self, outbound: Outbound, destination: str,
                 on_stale_recipient: Callable[[], None] = lambda: None,
                 on_receipt_signer: Callable[[x509.Certificate], None] = lambda cert: None) -> None:
        self.outbound = outbound
        self.destination = destination
        self.on_stale_recipient = on_stale_recipient
        self.on_receipt_signer = on_receipt_signer  # a signer we have not cached: the peer renewed

    def _log(self, level: int, msg: str, *args, **extra) -> None:
        log.log(level, msg, *args, extra={"destination": self.destination, **extra})

    async def _doc_of(self, message_id: str) -> str | None:
        """The 公文标识 our message ``message_id`` carries (None for one relayed): every log line about
        a document names it. Asked only on the way to a warning, never for a delivery."""
        link = await self.outbound.store.links.link(message_id)
        return link.doc_id if link is not None else None

    async def send(self, batch: list[QueueEntry], *, last_chance: bool = False) -> None:
        """Send ``batch``; raises one of :data:`TRANSIENT` if the request failed as a whole.
        ``last_chance``: the one attempt after a restart past their windows — a failure gives them up."""
        outbound, ctx, store = self.outbound, self.outbound.ctx, self.outbound.store
        policy = ctx.trust_policy()
        frames, frame_digests = await asyncio.to_thread(_frames, batch, store.blobs, policy.limits,
                                                        policy.digest)
        started = asyncio.get_running_loop().time()
        try:
            results = await outbound.client.send_frames(outbound.peer(self.destination), frames)
        except TRANSIENT as exc:
            now = ctx.clock()
            for e in batch:
                await self.defer_or_bounce(e, exc, now, last_chance=last_chance)
            raise
        outbound.latency.observe(asyncio.get_running_loop().time() - started)
        now = ctx.clock()
        by_id = {e.message_id: e for e in batch}
        for r in results:
            entry = by_id.get(r.message_id)
            if entry is None:  # another header of a bundle in this batch: its row is settled elsewhere
                continue
            if r.receipt is not None:
                try:
                    verified = verify_receipt(r.receipt, trust=ctx.trust, now=now, message_id=entry.message_id,
                                              envelope_digest=frame_digests[entry.blob_digest],
                                              digest_algorithm=policy.digest, receiver_node=self.destination,
                                              intermediates=ctx.intermediates, revocation=ctx.revocation)
                except GwxError as exc:
                    self._log(logging.ERROR, "receipt for %s does not verify: %s", entry.message_id, exc,
                              message_id=entry.message_id, code=exc.code, doc_id=await self._doc_of(entry.message_id))
                    await self.defer_or_bounce(entry, exc, now, last_chance=last_chance)
                    continue
                self.on_receipt_signer(verified.signer_certificate)
                await self._sent(entry, r.receipt, now)
            elif gives_up_on_code(r.error_code or ""):
                if r.error_code in STALE_RECIPIENT_CODES:
                    # The peer renewed its encryption key and the overlap is over: this envelope is
                    # sealed and lost, but the next drafts must use the peer's current certificate.
                    self.on_stale_recipient()
                self._log(logging.WARNING, "%s refused %s for good: %s %s", self.destination, entry.message_id,
                          r.error_code, r.error_message, message_id=entry.message_id, code=r.error_code,
                          doc_id=await self._doc_of(entry.message_id))
                await self.bounce(entry, ErrorInfo(r.error_code or "UNKNOWN", r.error_message or ""))
            else:
                await self.defer_or_bounce(entry, ErrorInfo(r.error_code or "UNKNOWN", r.error_message or ""), now,
                                           last_chance=last_chance)

    async def _sent(self, entry: QueueEntry, receipt: bytes, now: dt.datetime) -> None:
        store = self.outbound.store
        async with store.transaction() as tx:
            # Nothing moved (an operator purged it while it was on the wire): its rows stay as the purge left them.
            if await store.queue.mark_sent([entry.message_id], receipt, tx=tx):
                await apply_transport_outcome(store, entry.message_id, Event.SENT, at=now,
                                              actor=f"node:{self.destination}", tx=tx)
        self.outbound.sent.inc(destination=self.destination)

    async def defer_or_bounce(self, entry: QueueEntry, error: ErrorInfo | GwxError, now: dt.datetime, *,
                              last_chance: bool = False) -> None:
        """A failed attempt at ``entry``: try again when the retry function says, or give up (at once
        after the ``last_chance`` a restart past its window gave it)."""
        info = ErrorInfo.of(error)
        self.outbound.failures.inc(destination=self.destination, code=info.code)
        if last_chance:
            await self.bounce(entry, ErrorInfo.of(self.outbound.expired(entry.expires_at, entry.attempts,
                                                                        entry.last_error, last_try=info)))
            return
        first = entry.first_attempt_at or now
        policy = self.outbound.policy
        if entry.expires_at is not None and entry.expires_at > first:
            # The envelope's own lifetime is the window: for our messages it is our window, for one
            # relayed it is the origin's (a child offline for a day is waited for, not given up on
            # after the relay's own window).
            policy = replace(policy, max_age=entry.expires_at - first)
        when = next_attempt(entry.attempts + 1, first, now, policy, self.outbound.rand())
        if when is GIVE_UP:  # the window closed at this attempt: the same reason as the sweep's
            await self.bounce(entry, ErrorInfo.of(self.outbound.expired(entry.expires_at, entry.attempts + 1, info)))
        else:
            await self.outbound.store.queue.defer(entry.message_id, when, info)

    async def bounce_expired(self, now: dt.datetime) -> None:
        """Envelopes whose retry window closed before delivery (also while the peer backs off); the
        reason tells whether it ended while this node was stopped (:meth:`Outbound.expired`). One
        whose window ended while this node was stopped, and whose header the receiver would still
        take, is tried once more first (nothing is lost because our own node was down); raises
        one of :data:`TRANSIENT` if the peer could not be reached for that attempt."""
        last_chance: list[QueueEntry] = []
        for entry in await self.outbound.store.queue.expired(now, destination=self.destination):
            if await self._may_try_once_more(entry, now):
                last_chance.append(entry)
            else:
                await self.bounce(entry, ErrorInfo.of(self.outbound.expired(entry.expires_at, entry.attempts,
                                                                            entry.last_error)))
        failure: Exception | None = None
        for batch in batches(last_chance, self.outbound.ctx.config.limits.batch_size):
            try:
                await self.send(batch, last_chance=True)
            except TRANSIENT as exc:  # its rows are given up already; the peer backs off
                failure = failure or exc
        if failure is not None:
            raise failure

    async def _may_try_once_more(self, entry: QueueEntry, now: dt.datetime) -> bool:
        """Its window ended while this node was stopped, it has not had its one attempt since this
        start, and its envelope header has not expired (read from the sealed frame)."""
        outbound = self.outbound
        if entry.message_id in outbound.tried_once_more or not outbound.ended_while_stopped(entry.expires_at):
            return False  # (the header is read from the frame only for one that may qualify)
        outbound.tried_once_more.add(entry.message_id)
        limits = outbound.ctx.trust_policy().limits
        path_for = outbound.store.blobs.path_for
        expires = await asyncio.to_thread(lambda: _header_expires(path_for(entry.blob_digest), entry.message_id, limits))
        return outbound.may_try_once_more(entry.expires_at, expires, now)

    async def bounce(self, entry: QueueEntry, info: ErrorInfo, *, actor: str | None = None) -> None:
        """Give up on ``entry``: our own message's rows turn failed; a relayed one's origin is told.
        ``actor``: who gave up, when not this node (an operator's purge)."""
        store = self.outbound.store
        back = await bounce_draft(self.outbound, entry, info)
        async with store.transaction() as tx:
            await store.queue.bounce(entry.message_id, info, tx=tx, actor=actor or "node")
            # Units that moved to another node since (the old one refused them): sent there instead.
            moved = await readdress_failed(self.outbound, tx, entry.message_id)
            await apply_transport_outcome(store, entry.message_id, Event.FAILED, at=self.outbound.ctx.clock(),
                                          actor=actor or f"node:{self.destination}", reason=f"{info.code}: {info.message}",
                                          tx=tx, except_units={u for units in moved.values() for u in units})
            if back is not None:
                await store.drafts.add_draft(tx, back)
        for node in moved:
            self.outbound.wake(node)
        self.outbound.bounced.inc(destination=self.destination)
        if back is not None:
            self.outbound.wake(back.header.destination_node)
        self._log(logging.WARNING, "bounced %s: %s", entry.message_id, info.message, message_id=entry.message_id,
                  code=info.code, doc_id=await self._doc_of(entry.message_id))
