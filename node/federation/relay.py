"""Relaying: keeping an envelope for another node durably, queueing it onward, and giving up on one.

A relay stores and forwards what it cannot read: the payload is encrypted end to end for the
destination node, and this module never holds a decryption key. Before its custody receipt goes
back (the same rule as for its own mail: fsync, then receipt) the relay has

- judged the head as any receiver does, but for the destination and the decryption
  (:class:`exchange_protocol.envelope_seal.RelayCheck`: header syntax, expiry, the hop count, the
  origin's signature, its trust path and revocation, the signer naming the origin), so junk is
  refused at the first hop and never travels further;
- checked that the peer is the origin when the envelope has passed no relay yet;
- checked the payload against the digest the origin signed;
- found the next hop (:meth:`node.federation.routing.Router.next_hop`): never the node the envelope
  came from (two directories that disagree would otherwise pass it back and forth), and within
  the hop limit (one more hop must not exceed it);
- written the frame with its hop count raised as a blob (fsynced), one per next hop, and committed
  in one transaction, for every next hop, the ``received`` rows (so a resend gets the original
  receipt: duplicates are judged by the envelope's identity, hops left out, whatever the route) and
  the queue rows — before a header for this node itself is checked and accepted.

The relay's receipt tells the previous hop it has custody; the destination's own ``transport-ack``
(signed by it, end to end) travels back later like any notice. When a relay gives up on an envelope
— the next hop refused it for good, or its retry window closed — :func:`bounce_notice` is what the
origin hears: a ``bounce`` routed back along the tree, naming the message and the reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from exchange_protocol.envelope import EnvelopeHeader, MessageType, decode_header
from exchange_protocol.envelope_seal import EnvelopeOpener, RelayCheck, VerifiedHead, VerifiedHeader
from exchange_protocol.frame import read_head
from exchange_protocol.notices import MAX_TEXT, Notice
from exchange_protocol.transport_receipt import TransportReceipt, sign_receipt
from node.errors import NodeError
from node.federation.routing import NoRoute, RouteLoop
from node.store import Draft, ErrorInfo, InboundEnvelope, OutboundItem, QueueEntry
from pki.errors import ErrorKind, GwxError

if TYPE_CHECKING:
    from node.federation.acceptor import Acceptor
    from node.federation.outbound import Outbound

SPOOL_IN_MEMORY = 4 * 1024 * 1024  # larger frames are spooled to a temporary file before they become a blob


class OriginMismatch(NodeError):
    """A peer sending on behalf of a node that is not its own (not as a relay: no hop counted)."""

    code = "ENV_ORIGIN_MISMATCH"
    kind = ErrorKind.FORBIDDEN


class NotNeighbour(NodeError):
    """A node that is not our parent, child, direct link or static peer handing us an envelope that
    passed a relay, or asking us to relay one: the tree's edges are the only ways in."""

    code = "ROUTE_NOT_NEIGHBOUR"
    kind = ErrorKind.FORBIDDEN


def check_peer(header: EnvelopeHeader, hops: int, peer_node: str, router) -> None:
    """From its origin an envelope comes with no hop counted; after that, only a neighbour (a relay
    on the tree) may hand it on."""
    if hops == 0 and header.origin_node != peer_node:
        raise OriginMismatch(f"envelope from node {header.origin_node} arrived over a connection of {peer_node} "
                             "without passing a relay", origin=header.origin_node, peer=peer_node)
    if hops > 0 and not router.is_neighbour(peer_node):
        raise NotNeighbour(f"node {peer_node} is not a neighbour of this node in the network directory: it may "
                           "not hand on envelopes of other nodes", peer=peer_node)


async def chunks_of(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _then(prefix: bytes, rest) -> Iterator[bytes]:
    """``prefix``, then what is left of the file ``rest``, in chunks."""
    yield prefix
    while chunk := rest.read(1024 * 1024):
        yield chunk


class Relay:
    """Takes custody of envelopes addressed to other nodes (one per node, beside its :class:`Acceptor`)."""

    def __init__(self, acceptor: Acceptor, on_queued: Callable[[str], None]) -> None:
        self.acceptor = acceptor
        self.on_queued = on_queued
        self.relayed = acceptor.registry.counter("gwx_envelopes_relayed_total",
                                                 "Envelopes taken in custody for another node, by next hop",
                                                 labels=("hop",))

    def next_hop(self, header: EnvelopeHeader, peer_node: str) -> str:
        """Where to forward an envelope for ``header.destination_node`` that ``peer_node`` handed us."""
        router = self.acceptor.ctx.router
        hop = router.next_hop(header.destination_node)
        if hop == peer_node:
            raise RouteLoop(f"node {peer_node} handed us an envelope for {header.destination_node}, but our route "
                            f"to {header.destination_node} goes back through {peer_node}: the two nodes' network "
                            "directories disagree", destination=header.destination_node, peer=peer_node)
        if router.peer(hop) is None:
            raise NoRoute(f"this node knows no route to node {header.destination_node} (its network directory "
                          "may be older than the sender's)", destination=header.destination_node)
        return hop

    async def accept(self, chunks: AsyncIterator[bytes], peer_node: str, *,
                     mine: bool) -> dict[str, bytes | GwxError]:
        """Accept one frame read from ``chunks`` that is not only for this node: take custody of the
        headers for other nodes (one frame per next hop, the same payload bytes) and, when ``mine``,
        accept this node's own header as :class:`Acceptor` does.

        Returns, per header, its receipt or the error that refuses it alone (no route, a loop, the
        hop limit, this node's own header refused). What refuses the frame as a whole — a bad
        signature, a payload that is not the signed one, a peer that may not hand it over — raises.
        """
        acceptor, ctx = self.acceptor, self.acceptor.ctx
        now = ctx.clock()
        pipeline = (EnvelopeOpener(acceptor.policy, ctx.decryption_key, ctx.node_id, now) if mine
                    else RelayCheck(acceptor.policy, now))
        judged = False
        tmp = acceptor.store.blobs.tmp_dir
        with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, dir=tmp) as raw, \
                tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, dir=tmp) as plain:
            async for chunk in chunks:
                raw.write(chunk)
                out = pipeline.feed(chunk)
                if mine:
                    plain.write(out)
                if not judged and pipeline.verified is not None:  # before any payload byte is kept
                    judged = True
                    head = pipeline.verified
                    check_peer(head.headers[0].header, head.head.hops, peer_node, ctx.router)
                    if not ctx.router.is_neighbour(peer_node):
                        raise NotNeighbour(f"node {peer_node} is not a neighbour of this node in the network "
                                           "directory: it may not use this node as a relay", peer=peer_node)
            if mine:
                opened = pipeline.close()
                verified, envelope_sha = opened.verified, opened.envelope_digest
            else:
                verified, envelope_sha = pipeline.close(hop_check=False)
            outcomes: dict[str, bytes | GwxError] = {}
            for v in verified.headers:  # duplicates first: what we hold is answered, never routed again
                seen = await acceptor.seen_before(v.header, v.identity_digest, envelope_sha, peer_node)
                if seen is not None:
                    outcomes[v.header.message_id] = seen
            by_hop = self._routes([v for v in verified.headers if v.header.message_id not in outcomes
                                   and v.header.destination_node != ctx.node_id], verified, peer_node, outcomes)
            # The others' first: each next hop's frame written, then their custody in one commit, and their
            # queues woken — before this node's own package check, blobs and commit (a county's own units
            # wait a moment; its seventeen townships no longer wait for it, nor for seventeen commits).
            payload_at = len(verified.head.prefix())
            onward: list[tuple[str, list[VerifiedHeader], str, int]] = []
            for hop, headers in by_hop.items():
                prefix = verified.subset_prefix([v.header.destination_node for v in headers], verified.head.hops + 1)
                raw.seek(payload_at)
                ref = await asyncio.to_thread(acceptor.store.blobs.put_sync, _then(prefix, raw))
                onward.append((hop, headers, ref.digest, ref.size))
            if onward:
                outcomes.update(await self.commit(onward, envelope_sha, now))
            if mine and opened.header.message_id not in outcomes:
                try:
                    outcomes[opened.header.message_id] = await self._accept_mine(opened, raw, plain, envelope_sha,
                                                                                 peer_node, now)
                except GwxError as exc:  # our own header alone: the others went on
                    outcomes[opened.header.message_id] = exc
        return outcomes

    def _routes(self, headers: list[VerifiedHeader], verified: VerifiedHead, peer_node: str,
                outcomes: dict[str, bytes | GwxError]) -> dict[str, list[VerifiedHeader]]:
        """``headers`` by the next hop each goes to; one that cannot go on gets its error in ``outcomes``."""
        by_hop: dict[str, list[VerifiedHeader]] = {}
        for v in headers:
            try:
                hop = self.next_hop(v.header, peer_node)
                verified.check_hops(verified.head.hops + 1, [v])
            except GwxError as exc:
                outcomes[v.header.message_id] = exc
                continue
            by_hop.setdefault(hop, []).append(v)
        return by_hop

    async def _accept_mine(self, opened, raw, plain, envelope_sha: str, peer_node: str, now: dt.datetime) -> bytes:
        """This node's own header of a frame that also carries others': checked and committed as the
        acceptor commits any envelope (the whole frame is kept as its envelope blob)."""
        self.acceptor.check_parties(opened.header, opened.hops, peer_node)
        return await self.acceptor.keep(opened.header, opened.identity_digest, envelope_sha, raw, plain, now)

    async def commit(self, onward: list[tuple[str, list[VerifiedHeader], str, int]], envelope_sha: str,
                     now: dt.datetime) -> dict[str, bytes | GwxError]:
        """Custody of the headers of every next hop — per hop (hop, its headers, the digest and size of
        its onward frame, already durable) — in one transaction; each header's receipt (or its replay
        error). Each hop's queue is woken once it committed."""
        ctx, store = self.acceptor.ctx, self.acceptor.store
        # We keep it as long as its origin allows, but no longer than our own retry window.
        until = now + dt.timedelta(seconds=ctx.config.retry.window_seconds)
        pairs, hops = [], []
        for hop, headers, blob_digest, size in onward:
            for v in headers:
                h = v.header
                receipt = sign_receipt(TransportReceipt(h.message_id, envelope_sha, now, ctx.node_id,
                                                        digest_algorithm=h.digest_algorithm),
                                       ctx.signer, ctx.intermediates)
                pairs.append((InboundEnvelope(h.message_id, envelope_sha, blob_digest, h.origin_node, receipt,
                                              h.type.value, size, None, v.identity_digest, relayed_to=hop),
                              OutboundItem(h.message_id, hop, blob_digest, size, h.type.value,
                                           expires_at=min(h.expires, until))))
                hops.append(hop)
        results = await store.relay_inbound(pairs)
        outcomes: dict[str, bytes | GwxError] = {}
        queued: dict[str, int] = {}
        for (env, _), hop, result in zip(pairs, hops, results, strict=True):
            outcomes[env.message_id] = result if isinstance(result, GwxError) else result.receipt
            if not isinstance(result, GwxError) and result.new:
                queued[hop] = len([h for h in hops if h == hop])
        for hop, n in queued.items():
            self.relayed.inc(n, hop=hop)
            self.on_queued(hop)
        return outcomes


async def bounce_draft(outbound: Outbound, entry: QueueEntry, info: ErrorInfo) -> Draft | None:
    """The bounce to send when this node gives up on ``entry``, if it is an envelope relayed for
    another node (None for our own, which the origin's rows record, and for notices that concern no
    unit's document: a bounce about a bounce or a delivery notice would only echo)."""
    ctx, store = outbound.ctx, outbound.store

    def read() -> EnvelopeHeader | None:
        with store.blobs.open(entry.blob_digest) as f:
            head = read_head(f, ctx.trust_policy().limits)
        headers = [decode_header(s.header_bytes) for s in head.signed] if head is not None else []
        return next((h for h in headers if h.message_id == entry.message_id), None)  # a bundle's own header
    try:
        header = await asyncio.to_thread(read)
    except (OSError, GwxError):  # nothing readable to bounce: the queue row records why
        return None
    if header is None or header.origin_node == ctx.node_id or header.from_unit is None \
            or header.type in (MessageType.TRANSPORT_ACK, MessageType.BOUNCE):
        return None
    now = ctx.clock()
    reason = f"{info.code}: {info.message} (relay {ctx.node_id}, next hop {entry.destination})"
    notice = Notice(MessageType.BOUNCE, None, header.to_units, now, reason=reason[:MAX_TEXT])
    bounce = outbound.header(MessageType.BOUNCE, header.origin_node, None, (header.from_unit,), now,
                             in_reply_to=header.message_id)
    window = dt.timedelta(seconds=ctx.config.retry.window_seconds)
    data = notice.encode()  # a few hundred bytes: kept in the draft row, no blob of its own
    return Draft(bounce, hashlib.sha256(data).hexdigest(), len(data), now, now + window, data)


__all__ = ["OriginMismatch", "Relay", "bounce_draft", "check_peer"]
