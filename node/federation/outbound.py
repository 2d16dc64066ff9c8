"""Sending: one queue object per destination node, one batch in flight per destination.

The shape of Matrix Synapse's federation sender, with every state persisted (Postfix): messages
enter as durable *drafts* (payload blob + HeaderDraft, written in the same transaction as the
business rows that caused them). A :class:`DestinationQueue` turns drafts into envelopes once it
knows the peer's encryption certificate (fetched over mutual TLS and cached), stores each envelope
as a blob and swaps the draft for a queue row in one transaction — so a retry always resends the
*same bytes* and the receiver's dedupe recognises it. It then sends the due window in batches over
one keep-alive connection, records the peer's signed transport receipts, and defers with backoff
(``exchange_protocol.retry``) on transient failures. Envelopes refused for good, and envelopes
whose retry window has closed, are bounced: the business rows they carried turn ``failed``.

Errors are caught by type at the loop boundary (``_run``): peer and transport errors mean back off;
anything else is logged with its traceback and the loop carries on after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_envelope, seal_stream
from exchange_protocol.retry import GIVE_UP, RetryPolicy, next_attempt
from exchange_protocol.states import Event
from exchange_protocol.transport_receipt import verify_receipt
from node.config import Peer
from node.context import NodeContext
from node.documents.tracking import apply_sender_event
from node.federation.transport import (
    OutgoingFrame,
    PeerClient,
    PeerCredentials,
    PeerIdentityMismatch,
    PeerProtocolError,
    PeerServerError,
    PeerUnreachable,
    is_permanent,
    verify_peer_credentials,
)
from node.ops.metrics import Registry
from node.store import (
    PEER_BACKING_OFF,
    PEER_DEAD,
    PEER_UP,
    Draft,
    ErrorInfo,
    NodeStore,
    OutboundItem,
    OutgoingLink,
    QueueEntry,
    StoredPeerCredentials,
    Transaction,
)
from pki.ca import pem
from pki.errors import GwxError

log = logging.getLogger("gwx.outbound")

SMALL_PAYLOAD = 4 * 1024 * 1024  # sealed in memory below this; streamed through a spool file above
BATCH_BYTES = 8 * 1024 * 1024
DEAD_AFTER_FAILURES = 8
REVERIFY_SECONDS = 300  # cached peer certificates are judged again (expiry, revocation) this often
TRANSIENT = (PeerUnreachable, PeerServerError, PeerProtocolError, PeerIdentityMismatch)


@dataclass(frozen=True)
class NewMessage:
    """What the service asks to send: its header (:meth:`Outbound.header`), a payload already
    durable as a blob, and the document it concerns."""

    header: HeaderDraft
    payload_digest: str
    payload_size: int
    doc_id: str


class Outbound:
    """Owns the destination queues; the service hands it messages, the runner starts and stops it."""

    def __init__(self, ctx: NodeContext, store: NodeStore, client: PeerClient, registry: Registry,
                 rand: Callable[[], float] = random.random) -> None:
        self.ctx = ctx
        self.store = store
        self.client = client
        self.rand = rand
        r = ctx.config.retry
        self.policy = RetryPolicy(min_delay=dt.timedelta(seconds=r.min_seconds),
                                  max_delay=dt.timedelta(seconds=r.max_seconds), multiplier=r.multiplier,
                                  jitter=r.jitter, max_age=dt.timedelta(seconds=r.window_seconds))
        self.queues: dict[str, DestinationQueue] = {}
        self.sent = registry.counter("gwx_envelopes_sent_total", "Envelopes acknowledged by the next node")
        self.failures = registry.counter("gwx_send_failures_total", "Failed delivery attempts, by code")
        self.bounced = registry.counter("gwx_envelopes_bounced_total", "Envelopes given up on")
        self.latency = registry.histogram("gwx_send_batch_seconds", "Time to deliver one batch")
        self._stopping = False

    def peer(self, node_id: str) -> Peer:
        peer = next((p for p in self.ctx.config.peers if p.node_id == node_id), None)
        if peer is None:
            raise PeerUnreachable(f"node {node_id} is not in this node's peer list", peer=node_id)
        return peer

    async def start(self) -> None:
        destinations = set(await self.store.drafts.draft_destinations())
        destinations |= set((await self.store.queue.depth()).keys())
        for dest in destinations | {p.node_id for p in self.ctx.config.peers}:
            self._queue(dest).wake()

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the batches in flight (up to ``timeout``), then stop; the rest waits on disk."""
        self._stopping = True
        for q in self.queues.values():
            q.stop()
        tasks = [q.task for q in self.queues.values() if q.task]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _queue(self, destination: str) -> DestinationQueue:
        q = self.queues.get(destination)
        if q is None:
            q = self.queues[destination] = DestinationQueue(self, destination)
            if not self._stopping:
                q.task = asyncio.get_running_loop().create_task(q.run(), name=f"gwx-send-{destination}")
        return q

    def wake(self, destination: str) -> None:
        self._queue(destination).wake()

    def header(self, type: MessageType, destination: str, from_unit: str | None, to_units: tuple[str, ...],
               now: dt.datetime, in_reply_to: str | None = None) -> HeaderDraft:
        """The header of a new message from this node: a fresh id, this node's lifetime and hop limit."""
        ttl = dt.timedelta(seconds=self.ctx.config.retry.window_seconds) + dt.timedelta(days=1)
        return HeaderDraft.new(type, self.ctx.node_id, destination, from_unit, to_units, now, ttl,
                               in_reply_to=in_reply_to, max_hops=self.ctx.config.limits.max_hops)

    async def add(self, tx: Transaction, messages: list[NewMessage], now: dt.datetime) -> list[str]:
        """Record messages as drafts inside the caller's transaction; returns their message ids.

        Call :meth:`wake` for their destinations after the transaction commits.
        """
        window = dt.timedelta(seconds=self.ctx.config.retry.window_seconds)
        for m in messages:
            h = m.header
            await self.store.drafts.add_draft(tx, Draft(h, m.payload_digest, m.payload_size, now, now + window))
            await self.store.links.add_links(tx, [OutgoingLink(h.message_id, m.doc_id, h.type.value,
                                                               h.destination_node, h.to_units, now)])
        return [m.header.message_id for m in messages]


class DestinationQueue:
    def __init__(self, outbound: Outbound, destination: str) -> None:
        self.o = outbound
        self.destination = destination
        self.task: asyncio.Task | None = None
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._credentials: PeerCredentials | None = None
        self._verified_at = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._failures = 0
        self._retry_at: dt.datetime | None = None

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    def _log(self, level: int, msg: str, *args, **extra) -> None:
        log.log(level, msg, *args, extra={"destination": self.destination, **extra})

    async def run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            try:
                try:
                    await self._step()
                except TRANSIENT as exc:
                    await self._peer_failed(exc)
                if not self._stopping:
                    await self._wait()
            except asyncio.CancelledError:
                raise
            except GwxError as exc:  # the store or a peer's answer: log, pause, carry on
                self._log(logging.ERROR, "send loop error: %s", exc, code=exc.code)
                await self._pause(5.0)
            except Exception:  # never let the destination's task die
                self._log(logging.ERROR, "unexpected error in the send loop", exc_info=True)
                await self._pause(5.0)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def _wait(self) -> None:
        now = self.o.ctx.clock()
        wake_at = self._retry_at
        due = await self.o.store.queue.next_due_at(self.destination)
        if due is not None and (wake_at is None or due < wake_at):
            # While the peer backs off nothing is sent before _retry_at, however due a row is.
            wake_at = due if self._retry_at is None or self._retry_at <= now else self._retry_at
        delay = 60.0 if wake_at is None else max(0.0, (wake_at - now).total_seconds())
        await self._pause(min(delay, 60.0))

    # --- one round ----------------------------------------------------------------------------
    async def _step(self) -> None:
        await self._bounce_expired()  # also while backing off: the retry window closes regardless
        if self._retry_at and self.o.ctx.clock() < self._retry_at:
            return
        if await self.o.store.drafts.drafts_for(self.destination, 1):
            await self._build_drafts()
        while not self._stopping:
            window = await self.o.store.queue.load_active_window(self.destination, self.o.ctx.config.limits.active_window)
            if not window:
                break
            for batch in _batches(window, self.o.ctx.config.limits.batch_size):
                await self._send_batch(batch)
                if self._stopping:
                    return

    async def _peer_credentials(self) -> PeerCredentials:
        ctx = self.o.ctx
        if self._credentials is not None:
            if (ctx.clock() - self._verified_at).total_seconds() < REVERIFY_SECONDS:
                return self._credentials
            self._credentials = None  # re-judged below: revoked or expired since is noticed
        stored = await self.o.store.peer_credentials.get(self.destination)
        now = ctx.clock()
        if stored is not None:
            try:
                self._credentials = verify_peer_credentials(self.destination, stored.signing_cert,
                                                            stored.encryption_cert, [stored.chain] if stored.chain else [],
                                                            ctx.trust, now, ctx.revocation)
                self._verified_at = now
                return self._credentials
            except GwxError as exc:  # expired or revoked since: fetch afresh
                self._log(logging.WARNING, "cached credentials of %s no longer valid: %s", self.destination, exc)
        creds = await self.o.client.fetch_credentials(self.o.peer(self.destination), ctx.trust, now, ctx.revocation)
        await self.o.store.peer_credentials.save(StoredPeerCredentials(
            self.destination, pem(creds.signing_certificate).decode(), pem(creds.encryption_certificate).decode(),
            b"".join(pem(c) for c in creds.chain).decode(), now))
        self._credentials, self._verified_at = creds, now
        return creds

    async def _build_drafts(self) -> None:
        creds = await self._peer_credentials()
        recipient = Recipient(creds.encryption_certificate)
        sender = self.o.ctx.sender
        blobs = self.o.store.blobs
        while drafts := await self.o.store.drafts.drafts_for(self.destination, 64):
            for d in drafts:
                try:
                    ref = await asyncio.to_thread(_build_envelope, blobs, d, sender, recipient)
                except (GwxError, FileNotFoundError) as exc:  # unbuildable for good: set it aside
                    await self._drop_draft(d, exc)
                    continue
                async with self.o.store.transaction() as tx:
                    await self.o.store.queue.enqueue(
                        OutboundItem(d.header.message_id, self.destination, ref.digest, ref.size, d.header.type.value,
                                     expires_at=d.expires_at), tx=tx)
                    await self.o.store.drafts.delete_draft(tx, d.header.message_id)

    async def _drop_draft(self, d: Draft, exc: Exception) -> None:
        info = ErrorInfo.of(exc) if isinstance(exc, GwxError) else ErrorInfo("STORE_CORRUPT", repr(exc))
        message_id = d.header.message_id
        self._log(logging.ERROR, "cannot build %s: %s", message_id, info.message, message_id=message_id,
                  code=info.code)
        async with self.o.store.transaction() as tx:
            await self.o.store.drafts.delete_draft(tx, message_id)
            await self.o.store.audit.append(tx, "node", "draft.failed", {"message_id": message_id},
                                            {"error": info.code, "message": info.message})
            await self._business(message_id, Event.FAILED, self.o.ctx.clock(),
                                 reason=f"{info.code}: {info.message}", tx=tx)

    async def _send_batch(self, batch: list[QueueEntry]) -> None:
        ctx, store = self.o.ctx, self.o.store
        peer = self.o.peer(self.destination)
        frames = [OutgoingFrame(e.message_id, store.blobs.path_for(e.blob_digest), e.size) for e in batch]
        started = asyncio.get_running_loop().time()
        try:
            results = await self.o.client.send_frames(peer, frames)
        except TRANSIENT as exc:
            now = ctx.clock()
            for e in batch:
                await self._defer_or_bounce(e, exc, now)
            raise
        self.o.latency.observe(asyncio.get_running_loop().time() - started)
        now = ctx.clock()
        by_id = {e.message_id: e for e in batch}
        for r in results:
            entry = by_id[r.message_id]
            if r.receipt is not None:
                try:
                    verify_receipt(r.receipt, trust=ctx.trust, now=now, message_id=entry.message_id,
                                   envelope_sha256=entry.blob_digest, receiver_node=self.destination,
                                   intermediates=ctx.intermediates, revocation=ctx.revocation)
                except GwxError as exc:
                    self._log(logging.ERROR, "receipt for %s does not verify: %s", entry.message_id, exc,
                              message_id=entry.message_id, code=exc.code)
                    await self._defer_or_bounce(entry, exc, now)
                    continue
                async with store.transaction() as tx:
                    await store.queue.mark_sent([entry.message_id], r.receipt, tx=tx)
                    await self._business(entry.message_id, Event.SENT, now, tx=tx)
                self.o.sent.inc(destination=self.destination)
            elif is_permanent(r.error_code or ""):
                self._log(logging.WARNING, "%s refused %s for good: %s %s", self.destination, entry.message_id,
                          r.error_code, r.error_message, message_id=entry.message_id, code=r.error_code)
                await self._bounce(entry, ErrorInfo(r.error_code or "UNKNOWN", r.error_message or ""))
            else:
                await self._defer_or_bounce(entry, ErrorInfo(r.error_code or "UNKNOWN", r.error_message or ""), now)
        await self._peer_ok()

    async def _defer_or_bounce(self, entry: QueueEntry, error: ErrorInfo | GwxError, now: dt.datetime) -> None:
        info = ErrorInfo.of(error)
        self.o.failures.inc(destination=self.destination, code=info.code)
        first = entry.first_attempt_at or now
        when = next_attempt(entry.attempts + 1, first, now, self.o.policy, self.o.rand())
        if when is GIVE_UP:
            await self._bounce(entry, info)
        else:
            await self.o.store.queue.defer(entry.message_id, when, info)

    async def _bounce_expired(self) -> None:
        now = self.o.ctx.clock()
        for entry in await self.o.store.queue.expired(now, destination=self.destination):
            await self._bounce(entry, ErrorInfo("QUEUE_EXPIRED", "retry window closed before delivery"))
        for d in await self.o.store.drafts.expired_drafts(self.destination, now):
            # Never built: the peer's certificate could not be had within the retry window.
            await self._drop_draft(d, GwxError("retry window closed before the peer could be reached",
                                               code="QUEUE_EXPIRED"))

    async def _bounce(self, entry: QueueEntry, info: ErrorInfo) -> None:
        async with self.o.store.transaction() as tx:
            await self.o.store.queue.bounce(entry.message_id, info, tx=tx)
            await self._business(entry.message_id, Event.FAILED, self.o.ctx.clock(),
                                 reason=f"{info.code}: {info.message}", tx=tx)
        self.o.bounced.inc(destination=self.destination)
        self._log(logging.WARNING, "bounced %s: %s", entry.message_id, info.message, message_id=entry.message_id,
                  code=info.code)

    async def _business(self, message_id: str, event: Event, now: dt.datetime, reason: str | None = None, *,
                        tx) -> None:
        """Reflect a transport outcome on the sender-side rows of the document this message carried
        (inside ``tx``, with the queue change that records the outcome)."""
        link = await self.o.store.links.link(message_id)
        if link is None or link.type != MessageType.DOCUMENT.value:
            return
        for unit in link.units:
            try:
                await apply_sender_event(self.o.store, link.doc_id, unit, event, at=now, actor=f"node:{self.destination}",
                                         reason=reason, details={"message_id": message_id}, tx=tx)
            except GwxError as exc:  # raised before any write: the transaction stays usable
                self._log(logging.WARNING, "cannot apply %s to %s/%s: %s", event.value, link.doc_id, unit, exc,
                          message_id=message_id, code=exc.code)

    async def _peer_ok(self) -> None:
        if self._failures:
            self._log(logging.INFO, "peer %s is reachable again", self.destination)
        self._failures, self._retry_at = 0, None
        await self.o.store.peers.set_peer_state(self.destination, PEER_UP)

    async def _peer_failed(self, exc: GwxError) -> None:
        self._failures += 1
        self._credentials = None if isinstance(exc, PeerIdentityMismatch) else self._credentials
        now = self.o.ctx.clock()
        when = next_attempt(self._failures, now, now, self.o.policy, self.o.rand())
        if when is GIVE_UP:
            when = now + self.o.policy.max_delay
        self._retry_at = when
        state = PEER_DEAD if self._failures >= DEAD_AFTER_FAILURES else PEER_BACKING_OFF
        await self.o.store.peers.set_peer_state(self.destination, state, failures=self._failures, error=exc)
        self._log(logging.WARNING, "peer %s %s (failure %d): %s; next try at %s", self.destination, state,
                  self._failures, exc.message, when.isoformat(), code=exc.code, attempt=self._failures)


def _batches(window: list[QueueEntry], max_count: int) -> Iterator[list[QueueEntry]]:
    batch: list[QueueEntry] = []
    size = 0
    for e in window:
        if batch and (len(batch) >= max_count or size + e.size > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(e)
        size += e.size
    if batch:
        yield batch


def _build_envelope(blobs, d: Draft, sender, recipient: Recipient):
    """Encrypt, sign and store one envelope (in a worker thread); returns the blob reference."""
    src_path = blobs.path_for(d.payload_digest)
    if d.payload_size <= SMALL_PAYLOAD:
        plaintext = src_path.read_bytes()
        if hashlib.sha256(plaintext).hexdigest() != d.payload_digest:
            raise GwxError(f"payload blob of {d.header.message_id} does not match its digest",
                           code="STORE_BAD_DIGEST")
        return blobs.put_sync(seal_envelope(d.header, plaintext, sender, recipient).data)
    with open(src_path, "rb") as src, tempfile.TemporaryFile(dir=blobs.tmp_dir) as spool:
        _, prefix = seal_stream(d.header, src, d.payload_size, spool, sender, recipient)
        spool.seek(0)

        def chunks() -> Iterator[bytes]:
            yield prefix
            while chunk := spool.read(1024 * 1024):
                yield chunk

        return blobs.put_sync(chunks())


__all__ = ["NewMessage", "Outbound"]
