"""Sending: the federation sender, which owns one queue per next hop.

A message is addressed to its destination node (the node hosting its units) and queued at the
first hop of its route (:meth:`node.federation.routing.Router.next_hop`): the destination itself
when it is a neighbour or a static peer, else the relay the directory's tree gives. Relayed
envelopes this node forwards for others join the same queues.

The shape of Matrix Synapse's federation sender, with every state persisted (Postfix). Messages
enter as durable *drafts* (payload blob — or a notice's few bytes in the draft row itself — and
HeaderDraft), written by :meth:`Outbound.add` in the
same transaction as the document rows that caused them; the caller wakes their destinations once
it commits. The work is split as Synapse splits it:

- :mod:`.destination_queue` — the per-destination loop, one task per peer, one batch in flight;
- :mod:`.envelope_builder` — drafts sealed into envelopes once the peer's certificate is known;
- :mod:`.batch_sender` — one batch over the wire, each envelope's receipt or refusal recorded;
- :mod:`.retry_limiter` — a peer that cannot be reached is backed off, the backoff persisted.

Every delay — a peer's backoff, an envelope's next attempt — comes from
:func:`exchange_protocol.retry.next_attempt` with the node's one policy (``[retry]``). Envelopes
refused for good, and envelopes and drafts whose retry window has closed, are given up: the
document rows they carried turn ``failed``, the reason saying whether the window ended while this
node was stopped or the peer did not take them for all of it (:meth:`Outbound.expired`). One whose
window ended while this node was stopped, its header still alive, is first tried once more at the
restart (:meth:`Outbound.may_try_once_more`) — a draft sealed for it, if its peer's certificate can
be had.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from exchange_protocol.envelope import HeaderDraft, MessageType
from node.config import Peer
from node.context import NodeContext
from node.errors import QueueExpired
from node.federation.destination_queue import DestinationQueue
from node.federation.retry_limiter import retry_policy
from node.federation.transport import PeerClient, PeerUnreachable
from node.ops.metrics import Registry
from node.stopping import cancel_all_and_wait
from node.store import Draft, ErrorInfo, NodeStore, OutgoingLink, Transaction


@dataclass(frozen=True)
class NewMessage:
    """What the service asks to send: its header (:meth:`Outbound.header`), a payload already
    durable as a blob, and the document it concerns."""

    header: HeaderDraft
    payload_digest: str
    payload_size: int
    doc_id: str
    payload: bytes | None = None  # a small payload (a notice) kept in the draft row itself: no blob

    @classmethod
    def inline(cls, header: HeaderDraft, payload: bytes, doc_id: str) -> NewMessage:
        """A message whose few bytes commit with its draft (one fsync with the caller's transaction)."""
        return cls(header, hashlib.sha256(payload).hexdigest(), len(payload), doc_id, payload)


class Outbound:
    """Owns the destination queues; the service hands it messages, the runner starts and stops it."""

    def __init__(self, ctx: NodeContext, store: NodeStore, client: PeerClient, registry: Registry,
                 rand: Callable[[], float] = random.random) -> None:
        self.ctx = ctx
        self.store = store
        self.client = client
        self.rand = rand
        self.policy = retry_policy(ctx.config.retry)
        self.queues: dict[str, DestinationQueue] = {}
        self.sent = registry.counter("gwx_envelopes_sent_total", "Envelopes acknowledged by the next node",
                                     labels=("destination",))
        self.failures = registry.counter("gwx_send_failures_total", "Failed delivery attempts, by code",
                                         labels=("destination", "code"))
        self.bounced = registry.counter("gwx_envelopes_bounced_total", "Envelopes given up on", labels=("destination",))
        self.latency = registry.histogram("gwx_send_batch_seconds", "Time to deliver one batch")
        self._stopping = False
        # This process's start: a retry window that ended before it ended while the node was stopped.
        self.started_at = ctx.clock()
        # Envelopes given their one attempt since this start although their window had ended meanwhile.
        self.tried_once_more: set[str] = set()

    def expired(self, expires_at: dt.datetime | None, attempts: int = 0, last_error: ErrorInfo | None = None, *,
                unreached: bool = False, held: bool = False, last_try: ErrorInfo | None = None) -> QueueExpired:
        """Why a message whose retry window closed is given up, as the clerk's ledger says it
        (``QUEUE_EXPIRED`` either way): the window ended while this node was stopped — the one
        attempt made at the restart failed (``last_try``: its error; for a draft, also when its
        peer's certificate could not be had for it), or none was made (its header's lifetime was
        over too) — and how many before; or the peer could not take it for the whole window, with
        the last attempt's error — a notice ``held`` as a draft behind an envelope sealed before it
        (the destination queue's rule while the peer is away: ``attempts`` and ``last_error`` are
        the peer's), or one never sealed because the peer could not even be reached for its
        certificate (``unreached``)."""
        last = f"the last: {last_error.code} {last_error.message}".rstrip() if last_error else "none answered"
        if self.ended_while_stopped(expires_at):
            before = f"{attempts} attempt(s) before it stopped, {last}" if attempts else "never tried before it stopped"
            since = ("not tried since" if last_try is None else
                     f"the one attempt made then failed: {last_try.code} {last_try.message}".rstrip())
            return QueueExpired(f"its retry window ended at {_utc(expires_at)} while this node was stopped (it "
                                f"started again at {_utc(self.started_at)}): {since}; {before}",
                                code="QUEUE_EXPIRED")
        if held:
            return QueueExpired(f"retry window closed while it was held for a peer that was away: the peer did not "
                                f"take what was sealed before it for the whole window ({attempts} attempt(s), {last})",
                                code="QUEUE_EXPIRED")
        if unreached:
            return QueueExpired("retry window closed before the peer could be reached (its certificate could "
                                "not be had for the whole window)", code="QUEUE_EXPIRED")
        return QueueExpired(f"retry window closed before delivery: the peer did not take it for the whole window "
                            f"({attempts} attempt(s), {last})", code="QUEUE_EXPIRED")

    def may_try_once_more(self, window_end: dt.datetime | None, header_expires: dt.datetime | None,
                          now: dt.datetime) -> bool:
        """The rule for a message whose retry window has closed, sealed or still a draft: it is tried
        once more if the window ended while this node was stopped (before this start) and its header
        has not expired (the window plus a day: the receiver would still take it) — nothing is lost
        because our own node was down. The caller sees that it is tried once only (an envelope:
        :meth:`BatchSender.bounce_expired`; a draft is sealed, and then it is one)."""
        return self.ended_while_stopped(window_end) and header_expires is not None and header_expires > now

    def ended_while_stopped(self, window_end: dt.datetime | None) -> bool:
        """Whether a retry window ending at ``window_end`` ended before this process started."""
        return window_end is not None and window_end <= self.started_at

    def peer(self, node_id: str) -> Peer:
        peer = self.ctx.router.peer(node_id)
        if peer is None:
            raise PeerUnreachable(f"node {node_id} is neither in this node's peer list nor in its network "
                                  "directory", peer=node_id)
        return peer

    async def start(self) -> None:
        destinations = set(await self.store.drafts.draft_destinations()) | {p.node_id for p in self.ctx.config.peers}
        for dest in destinations:  # destination nodes: their route's first hop
            self.wake(dest)
        # Sealed rows wait for the hop they were queued for, even if the route has changed since.
        for hop in await self.store.queue.depth():
            self.wake_hop(hop)

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish the batches in flight (up to ``timeout``), then stop; the rest waits on disk."""
        self._stopping = True
        for q in self.queues.values():
            q.stop()
        tasks = [q.task for q in self.queues.values() if q.task]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            await cancel_all_and_wait(pending)  # cut mid-batch: their rows stay queued for the next start

    def _queue(self, destination: str) -> DestinationQueue:
        q = self.queues.get(destination)
        if q is None:
            q = self.queues[destination] = DestinationQueue(self, destination)
            self.sent.declare(destination=destination)  # its series exist at 0 from its first wake-up
            self.bounced.declare(destination=destination)
            if not self._stopping:
                q.task = asyncio.get_running_loop().create_task(q.run(), name=f"gwx-send-{destination}")
        return q

    def wake(self, destination: str) -> None:
        """Something waits for ``destination`` (a destination node, or a hop): wake its route's first hop."""
        self._queue(self.ctx.router.next_hop(destination)).wake()

    def sender_for(self, hop: str):
        """The batch sender of the queue for ``hop`` (an operator's purge bounces through it)."""
        return self._queue(hop).sender

    def wake_hop(self, hop: str) -> None:
        """Rows were queued for ``hop`` itself (a relay's custody): wake that queue."""
        self._queue(hop).wake()

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
            await self.store.drafts.add_draft(tx, Draft(h, m.payload_digest, m.payload_size, now, now + window,
                                                        m.payload))
            await self.store.links.add_links(tx, [OutgoingLink(h.message_id, m.doc_id, h.type.value,
                                                               h.destination_node, h.to_units, now)])
        return [m.header.message_id for m in messages]


def _utc(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


__all__ = ["NewMessage", "Outbound"]
