"""Turning drafts into envelopes, once their destination's encryption certificate is known.

A draft is a message whose payload is durable but whose envelope cannot be sealed yet: that needs
the destination node's encryption certificate, verified and cached per next hop by
:mod:`node.federation.destination_credentials`. Drafts are kept per destination node; the queue that seals them is their route's first hop (:meth:`Router.next_hop`). Each envelope is sealed once,
stored as a blob, and swapped for a queue row with the draft's deletion (a round's in one transaction) — so
every retry resends the *same bytes* and the receiver's dedupe recognises them. Drafts of one
payload for several destinations are sealed as one fan-out bundle; notices answering one message
(e.g. the 签收 of a node's units for one 通知) are merged into one envelope
(:mod:`exchange_protocol.notices` states the rule: no timer, whatever waits when the hop's queue
gets to it).

A draft that can never be built (its payload blob gone or altered, a header refused — also a row
an older gwx wrote that the header check now refuses) is dropped, one at a time and without
holding up the others, and the document rows it carried turn ``failed`` with the reason; so is one
whose retry window closed before it could be sealed (its reason: the peer's certificate could not be
had, or — a notice held behind an envelope sealed before it — the peer was away) — unless the window ended while this node was
stopped and its header is still alive: then it is sealed at the restart for one attempt, as an
envelope would be (:meth:`EnvelopeBuilder.drop_expired`). An error the kinds' table
says to retry (:func:`node.error_kinds.disposition`: our HSM away, our own CRL stale) leaves the
draft where it is: it is raised to the destination's loop, which backs off and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from exchange_protocol.envelope_crypto import Recipient
from exchange_protocol.envelope_seal import seal_bundle, seal_bundle_stream
from exchange_protocol.notices import (
    Notice,
    NoticeError,
    batch_key,
    decode_notice,
    encode_notices,
    pack_notices,
)
from exchange_protocol.states import Event
from node.documents.tracking import apply_transport_outcome
from node.error_kinds import Disposition, disposition
from node.errors import BlobDigestMismatch, QueueExpired, StoreContended, StoreCorrupt
from node.federation.batch_sender import TRANSIENT
from node.federation.destination_credentials import DestinationCredentials
from node.store import (
    BlobRef,
    Draft,
    ErrorInfo,
    OutboundItem,
    UnreadableDraft,
)
from pki.errors import GwxError

if TYPE_CHECKING:
    from node.federation.outbound import Outbound

log = logging.getLogger("gwx.outbound")

DRAFTS_PER_ROUND = 64  # per destination node, each round
MAX_BUNDLE = 512  # headers in one fan-out frame (the protocol's cap is higher; answers stay small)
SMALL_PAYLOAD = 4 * 1024 * 1024  # sealed in memory below this; streamed through a spool file above
# The small envelopes a round holds in memory before it swaps them for their queue rows (one commit
# a round below it; a round of 64 drafts to each of many destinations, distinct 100-250 KB
# documents, could otherwise hold hundreds of MB and write them in one transaction).
ROUND_HELD_BYTES = 8 * 1024 * 1024


class EnvelopeBuilder:
    """Seals the drafts routed through one next hop, each for its own destination (the hop itself or
    a node beyond it) with that destination's credentials (:class:`DestinationCredentials`)."""

    def __init__(self, outbound: Outbound, hop: str) -> None:
        self.outbound = outbound
        self.hop = hop
        self.credentials = DestinationCredentials(outbound, hop)
        # What the hop's answers tell the builder (destination_queue wires them to the batch sender).
        self.forget_credentials = self.credentials.forget
        self.notice_signer = self.credentials.notice_signer
        self._in_round = False
        self._round_destinations: list[str] | None = None

    def begin_round(self) -> None:
        """The destination's round starts: :meth:`destinations` is read once until :meth:`end_round`."""
        self._in_round, self._round_destinations = True, None

    def end_round(self) -> None:
        self._in_round, self._round_destinations = False, None

    async def destinations(self) -> list[str]:
        """The destination nodes with drafts whose route starts with this hop. Within a round read
        once: a round asked three times (:meth:`drop_expired`, :meth:`has_drafts`, :meth:`build_drafts`
        — the store's drafts scanned on the reader's thread each time, ~110 rounds a 签收 phase of the
        medium city's 54-node process); drafts for a destination new since are sealed in the next
        round, which their commit wakes."""
        if self._round_destinations is not None:
            return self._round_destinations
        router = self.outbound.ctx.router
        found = [d for d in await self.outbound.store.drafts.draft_destinations() if router.next_hop(d) == self.hop]
        if self._in_round:
            self._round_destinations = found
        return found

    async def has_drafts(self) -> bool:
        return bool(await self.destinations())

    async def build_drafts(self, *, hold_notices: bool = False) -> None:
        """Seal every draft routed through this hop into a queued envelope (or drop it, if it never can be);
        with ``hold_notices``, the notices that may share an envelope stay drafts (the destination
        queue says so while an envelope sealed before them waits for a peer that was away).

        Drafts that carry the same payload (one document fanned out to many nodes) are sealed
        together: one bundle, its payload encrypted once for all their destinations, one header
        each (:func:`exchange_protocol.envelope_seal.seal_bundle`); its queue rows share the frame.
        Notices that answer the same message for the same destination (the 签收 of its units,
        :func:`exchange_protocol.notices.batch_key`) are merged into one payload and one envelope
        (:meth:`_build_notices`): what accumulated while this hop's last batch was in flight.
        """
        while drafts := await self._waiting(hold_notices=hold_notices):
            await self._seal(drafts)

    async def _seal(self, drafts: list[Draft]) -> None:
        """A round: the drafts claimed for it held (their lease renewed on PostgreSQL) until it ends."""
        async with self.outbound.store.drafts.holding([d.header.message_id for d in drafts]):
            await self._seal_held(drafts)

    async def _seal_held(self, drafts: list[Draft]) -> None:
        alone, batches = _coalesce(drafts)
        for group in batches:
            await self._build_notices(group)
        sealed: list[tuple[list[Draft], Sealed]] = []
        held = 0  # bytes of the small envelopes held in memory for the swap
        try:
            for group in _bundles(alone):
                if (ref := await self._sealed(group)) is not None:
                    sealed.append((group, ref))
                    held += len(ref.inline[1]) if ref.inline is not None else 0
                    if held >= ROUND_HELD_BYTES:  # a backlog of distinct documents: not all in memory at once
                        await self._swap(sealed)
                        sealed, held = [], 0
        except GwxError:
            await self._swap(sealed)  # what was sealed before an error of ours is queued all the same
            raise
        await self._swap(sealed)

    async def _waiting(self, *, hold_notices: bool = False) -> list[Draft]:
        """The next drafts to seal, up to DRAFTS_PER_ROUND per destination (unreadable ones set aside);
        with ``hold_notices`` the notices are left out, and a page of nothing but held notices is
        read on past (a longer page each time) so that what travels alone behind them is sealed."""
        drafts: list[Draft] = []
        for destination in await self.destinations():
            limit = DRAFTS_PER_ROUND
            while True:
                rows = await self.outbound.store.drafts.drafts_for(destination, limit)
                sealable = await self._set_aside_unreadable(rows, destination)
                if hold_notices:
                    sealable = [d for d in sealable if batch_key(d.header) is None]
                if sealable or len(rows) < limit:
                    break
                limit *= 2
            drafts += sealable
        return drafts

    async def _build(self, group: list[Draft]) -> None:
        if (ref := await self._sealed(group)) is not None:
            await self._swap([(group, ref)])

    async def _sealed(self, group: list[Draft]) -> Sealed | None:
        """``group``'s envelope sealed and stored, or held to commit with its queue row (None: it never
        can be, and its drafts were dropped)."""
        store, ctx = self.outbound.store, self.outbound.ctx
        recipients = [Recipient((await self.credentials.get(d.header.destination_node)).encryption_certificate)
                      for d in group]
        try:
            ref = await asyncio.to_thread(_build_bundle, store.blobs, group, ctx.sender, recipients,
                                          ctx.config.store.inline_max_bytes)
        except (FileNotFoundError, GwxError) as exc:
            if isinstance(exc, GwxError) and not _for_good(exc):
                raise  # ours to fix (an HSM away, a stale CRL): the drafts wait, the loop backs off
            for d in group:  # its payload is gone or refused: unbuildable for good
                await self.drop_draft(d.header.message_id, exc, d.header.destination_node)
            return None
        return ref

    async def _swap(self, sealed: list[tuple[list[Draft], Sealed]]) -> None:
        """Drafts swapped for their envelopes in one transaction (one writer's turn and one commit a
        round, not one each); a draft gone meanwhile: each envelope alone, only that copy given up.
        A small envelope's bytes commit in the same transaction (:class:`Sealed`)."""
        store = self.outbound.store
        for part in ([sealed] if len(sealed) > 1 else []) + [[one] for one in sealed]:
            with self._taken_meanwhile(part[0][0]):
                async with store.transaction() as tx:
                    for d in (d for group, _ in part for d in group):  # first: gone told apart from queued twice
                        await store.drafts.delete_draft(tx, d.header.message_id)
                    await store.inline.add(tx, [s.inline for _, s in part if s.inline is not None])
                    await store.queue.enqueue_many(
                        [OutboundItem(d.header.message_id, self.hop, s.ref.digest, s.ref.size, d.header.type.value,
                                      expires_at=d.expires_at) for group, s in part for d in group], tx=tx)
                if len(part) == len(sealed):  # skipped when a draft was gone: then each alone
                    return

    async def _build_notices(self, group: list[Draft]) -> None:
        """Seal notice drafts of one :func:`~exchange_protocol.notices.batch_key` as few envelopes.

        Each envelope carries a batch (:func:`~exchange_protocol.notices.pack_notices` cuts runs
        that fit one payload) under the header of its run's first — oldest — draft; in one
        transaction its queue row is added and every draft of the run deleted, with the outgoing
        links of the drafts it absorbed (those ids never travel). A draft whose notice cannot be
        read is dropped on its own; a run of one is sealed as it always was."""
        store, ctx = self.outbound.store, self.outbound.ctx
        read = await asyncio.to_thread(_read_notices, store.blobs, group)
        for d, exc in read.unreadable:
            await self.drop_draft(d.header.message_id, exc, d.header.destination_node)
        if not read.drafts:
            return
        recipient = Recipient((await self.credentials.get(group[0].header.destination_node))
                              .encryption_certificate)
        for run in read.runs():
            if len(run) == 1:
                await self._build([run[0][0]])
                continue
            drafts = [d for d, _ in run]
            first = drafts[0]
            try:
                sealed = await asyncio.to_thread(_seal_notices, store.blobs, first, [n for _, n in run], ctx.sender,
                                                 recipient, ctx.config.store.inline_max_bytes)
            except GwxError as exc:
                if not _for_good(exc):
                    raise  # ours to fix (an HSM away, a stale CRL): the drafts wait, the loop backs off
                for d in drafts:
                    await self.drop_draft(d.header.message_id, exc, d.header.destination_node)
                continue
            expiries = [d.expires_at for d in drafts if d.expires_at is not None]
            with self._taken_meanwhile(drafts):
                async with store.transaction() as tx:
                    for d in drafts:
                        await store.drafts.delete_draft(tx, d.header.message_id)
                        if d is not first:
                            await store.links.remove_link(tx, d.header.message_id)
                    await store.inline.add(tx, [sealed.inline] if sealed.inline is not None else [])
                    await store.queue.enqueue(OutboundItem(first.header.message_id, self.hop, sealed.ref.digest,
                                                           sealed.ref.size, first.header.type.value,
                                                           expires_at=min(expiries) if expiries else None), tx=tx)
                log.debug("%d %s notices for %s in one envelope %s", len(drafts), first.header.type.value,
                          first.header.destination_node, first.header.message_id,
                          extra={"destination": first.header.destination_node, "message_id": first.header.message_id})

    async def drop_expired(self, now: dt.datetime, *, notices_held: bool = False) -> None:
        """Drafts not sealed within their retry window (the peer's certificate could not be had, or
        — ``notices_held``, the destination queue's rule for :meth:`build_drafts` — notices were
        held for a peer that was away) are given up, the reason saying which — except those whose
        window ended while this node was stopped, their header still alive
        (:meth:`Outbound.may_try_once_more`): they are sealed now, so that the sender gives each the
        one attempt it gives such an envelope (:meth:`BatchSender.bounce_expired`, called next in
        the destination's round)."""
        for destination in await self.destinations():
            rows = await self.outbound.store.drafts.expired_drafts(destination, now)
            once_more = []
            for d in await self._set_aside_unreadable(rows, destination):
                if self.outbound.may_try_once_more(d.expires_at, d.header.expires, now):
                    once_more.append(d)
                else:
                    held = notices_held and batch_key(d.header) is not None
                    await self.drop_draft(d.header.message_id, await self._why_expired(d, held), destination)
            if once_more:
                await self._seal_once_more(destination, once_more)

    async def _why_expired(self, draft: Draft, held: bool) -> QueueExpired:
        """:meth:`Outbound.expired` for a draft never sealed: ``held`` behind an envelope for this
        hop (with the hop's failed attempts and last error), else unreached for its certificate."""
        if not held:
            return self.outbound.expired(draft.expires_at, unreached=True)
        peer = await self.outbound.store.peers.get_peer(self.hop)
        return self.outbound.expired(draft.expires_at, peer.failures if peer else 0,
                                     peer.last_error if peer else None, held=True)

    async def _seal_once_more(self, destination: str, drafts: list[Draft]) -> None:
        """Seal the drafts given one more attempt at this start. Their peer's certificate is had first:
        when it cannot be (the peer away and never asked before, its certificate revoked), that was
        their attempt, and they are given up with its error. An error of ours (our CRL stale, our
        HSM away) leaves them waiting, as any draft: the next round tries again."""
        try:
            await self.credentials.get(destination)
        except GwxError as exc:
            if not isinstance(exc, TRANSIENT) and not _for_good(exc):
                raise
            for d in drafts:
                await self.drop_draft(d.header.message_id, self.outbound.expired(d.expires_at, last_try=ErrorInfo.of(exc)),
                                      destination)
            return
        await self._seal(drafts)

    async def _set_aside_unreadable(self, rows: list[Draft | UnreadableDraft], destination: str) -> list[Draft]:
        """Drop the rows the header check refuses (e.g. an older gwx's bounce with no recipient unit);
        return the drafts that can be built."""
        for row in rows:
            if isinstance(row, UnreadableDraft):
                await self.drop_draft(row.message_id, row.error, destination)
        return [row for row in rows if isinstance(row, Draft)]

    async def drop_draft(self, message_id: str, exc: Exception, destination: str) -> None:
        store = self.outbound.store
        info = ErrorInfo.of(exc) if isinstance(exc, GwxError) else ErrorInfo("STORE_CORRUPT", repr(exc))
        log.error("cannot build %s: %s", message_id, info.message,
                  extra={"destination": destination, "message_id": message_id, "code": info.code})
        with self._taken_meanwhile([]):
            async with store.transaction() as tx:
                await store.drafts.delete_draft(tx, message_id)
                await store.audit.append(tx, "node", "draft.failed", {"message_id": message_id},
                                         {"error": info.code, "message": info.message})
                await apply_transport_outcome(store, message_id, Event.FAILED, at=self.outbound.ctx.clock(),
                                              actor=f"node:{destination}", reason=f"{info.code}: {info.message}",
                                              tx=tx)

    @contextlib.contextmanager
    def _taken_meanwhile(self, drafts: list[Draft]) -> Iterator[None]:
        """A draft gone at the swap (``delete_draft``'s :class:`StoreContended`: another worker took it
        after this one's lease ran out, or a reroute did) is no failure of the peer's nor ours: this
        copy is given up (its blob goes at the next recovery), the rest of the block skipped."""
        try:
            yield
        except StoreContended as exc:
            log.info("%s was sealed or dropped meanwhile (another worker, or re-addressed): this copy is "
                     "given up", exc.details.get("message_id") or [d.header.message_id for d in drafts],
                     extra={"destination": self.hop})


def _for_good(error: GwxError) -> bool:
    """Whether a draft that failed to build with ``error`` can never be built: the error kinds' table
    decides (:func:`node.error_kinds.disposition`), except that a damaged payload blob (an internal
    error, retried elsewhere) does not heal by waiting."""
    return isinstance(error, StoreCorrupt) or disposition(error) is Disposition.GIVE_UP


def _bundles(drafts: list[Draft]) -> list[list[Draft]]:
    """Drafts grouped by payload (at most MAX_BUNDLE each), each group in message id order — the order
    of the bundle's headers, which the peer answers in (:func:`node.federation.batch_sender._frames`)."""
    by_payload: dict[tuple[str, str], list[Draft]] = {}
    for d in drafts:
        by_payload.setdefault((d.payload_digest, d.header.type.value), []).append(d)
    groups = []
    for same in by_payload.values():
        same.sort(key=lambda d: d.header.message_id)
        groups += [same[i:i + MAX_BUNDLE] for i in range(0, len(same), MAX_BUNDLE)]
    return groups


def _coalesce(drafts: list[Draft]) -> tuple[list[Draft], list[list[Draft]]]:
    """The drafts that travel alone, and the groups of notice drafts that may share an envelope
    (two or more of one :func:`~exchange_protocol.notices.batch_key`), each in message id order."""
    keyed: dict[tuple, list[Draft]] = {}
    alone: list[Draft] = []
    for d in drafts:
        key = batch_key(d.header)
        if key is None:
            alone.append(d)
        else:
            keyed.setdefault(key, []).append(d)
    groups = []
    for same in keyed.values():
        if len(same) == 1:
            alone += same
        else:
            groups.append(sorted(same, key=lambda d: d.header.message_id))
    return alone, groups


@dataclass
class _ReadNotices:
    drafts: list[tuple[Draft, Notice]] = field(default_factory=list)
    unreadable: list[tuple[Draft, Exception]] = field(default_factory=list)

    def runs(self) -> list[list[tuple[Draft, Notice]]]:
        """The readable drafts cut into runs of one payload each (per document, in order)."""
        by_doc: dict[tuple, list[tuple[Draft, Notice]]] = {}
        for pair in self.drafts:
            by_doc.setdefault((pair[1].type, pair[1].doc_id), []).append(pair)
        runs = []
        for pairs in by_doc.values():
            start = 0
            for packed in pack_notices([n for _, n in pairs]):
                runs.append(pairs[start:start + len(packed)])
                start += len(packed)
        return runs


def _read_notices(blobs, group: list[Draft]) -> _ReadNotices:
    """Each draft's notice from its payload blob (in a worker thread); the ones that can never be
    read (blob gone or altered, not one notice of the draft's type) apart. Another error (the disk
    failing) is raised: the drafts wait and the destination backs off, as for any draft."""
    read = _ReadNotices()
    for d in group:
        try:
            data = _payload(blobs, d)
            if hashlib.sha256(data).hexdigest() != d.payload_digest:
                raise BlobDigestMismatch(f"payload blob of {d.header.message_id} does not match its digest")
            notice = decode_notice(data)
            if notice.type is not d.header.type:
                raise NoticeError(f"a {d.header.type.value} draft carries a {notice.type.value} notice",
                                  code="NOTICE_TYPE_MISMATCH")
        except (FileNotFoundError, GwxError) as exc:
            if isinstance(exc, GwxError) and not _for_good(exc):
                raise
            read.unreadable.append((d, exc))
            continue
        read.drafts.append((d, notice))
    return read


def _payload(blobs, d: Draft) -> bytes:
    """A small draft's payload: kept in its row (a notice), else read from its blob."""
    if d.payload is not None:
        return d.payload
    with blobs.open(d.payload_digest) as handle:
        return handle.read()


@dataclass(frozen=True)
class Sealed:
    """An envelope sealed for the queue: stored as a blob file (fsynced) before its row, or — up to
    ``[store] inline_max_bytes``, as every notice and small document is — its bytes in ``inline``,
    committed with its queue row in the swap's transaction (:mod:`node.store.sqlite.inline_blobs`:
    no file, no fsync of its own; the queue row names it, so it is kept while queued)."""

    ref: BlobRef
    inline: tuple[str, bytes] | None = None


def _kept(blobs, frame: bytes, inline_max: int) -> Sealed:
    """``frame`` held to commit with its queue row when small, else stored as a blob now."""
    if len(frame) <= inline_max:
        digest = hashlib.sha256(frame).hexdigest()
        return Sealed(BlobRef(digest, len(frame)), (digest, frame))
    return Sealed(blobs.put_sync(frame))


def _seal_notices(blobs, first: Draft, notices: list[Notice], sender, recipient: Recipient, inline_max: int) -> Sealed:
    """One batch payload sealed under ``first``'s header (in a worker thread)."""
    return _kept(blobs, seal_bundle([first.header], encode_notices(notices), sender, [recipient]).data, inline_max)


def _build_bundle(blobs, group: list[Draft], sender, recipients: list[Recipient], inline_max: int) -> Sealed:
    """Encrypt once, sign each header (in a worker thread); a large frame is stored as it is sealed."""
    first = group[0]
    headers = [d.header for d in group]
    if first.payload_size <= SMALL_PAYLOAD:
        plaintext = _payload(blobs, first)
        if hashlib.sha256(plaintext).hexdigest() != first.payload_digest:
            raise BlobDigestMismatch(f"payload blob of {first.header.message_id} does not match its digest")
        return _kept(blobs, seal_bundle(headers, plaintext, sender, recipients).data, inline_max)
    with blobs.open(first.payload_digest) as src, tempfile.TemporaryFile(dir=blobs.tmp_dir) as spool:
        _, prefix = seal_bundle_stream(headers, src, first.payload_size, spool, sender, recipients)
        spool.seek(0)

        def chunks() -> Iterator[bytes]:
            yield prefix
            while chunk := spool.read(1024 * 1024):
                yield chunk

        return Sealed(blobs.put_sync(chunks()))
