"""Re-addressing what is still here for a unit that moved to another node (a township got its own node).

The network directory names each unit's hosting node. When the directory this node holds changes
(installed by hand or fetched from the parent: :class:`Rerouter` watches the router's copy, as the
router itself does) and at start-up, every document of ours that has not left this node yet and
names a unit the directory now places elsewhere is re-addressed:

- a *draft* (not sealed yet: a document waits as a draft per destination node, with the units it
  carries) is replaced by one new draft per node now hosting its units — split when its units now
  belong to different nodes;
- a *sealed envelope still waiting in the queue* (never handed on: ``incoming`` or ``deferred``) is
  withdrawn from the queue and turned back into new drafts the same way: it was sealed for the old
  node, which alone could open it, but the document's package — the plaintext the draft was sealed
  from — is still held (the outbox keeps it for show and download), so it is sealed afresh for the
  new node. A bundle (one frame with a header per destination behind the same hop, one queue row
  each) is sent whole, so all its rows are withdrawn together and drafted again, the units that did
  not move for the node they were going to. An envelope in flight at that moment (claimed for a
  send to the old node, which may be down and only refusing connections) is left alone, and one
  an operator holds stays held: each is re-addressed once it waits again. If the package were gone
  the envelope stays queued for the old node, and the log says why.

A pass reads every envelope of ours still in the queue at one instant, each with its state (one
statement: a row claimed or put back meanwhile cannot fall between two reads), and notes every
message it should move but cannot yet — a draft being sealed at that moment, an envelope in flight
or held then, one claimed before it could be taken back — and while the directory stays the same,
the watch looks at only those each second (one queue row read each): once one of them waits again
(or is no longer in the queue), a pass runs. Nothing else is read again after the moves: a pass
costs one read of our queued documents, then reads only for what it moves. The waiting rows
of a bundle one of whose rows is in flight or held are not among them: the frame goes whole, so
they wait for that row (a pass when it waits again or finishes), rather than making a pass — a
read of the whole queue — every second for as long as it is held. Without it, an
envelope that happened to be in flight when the directory changed went back to waiting for the
old node and stayed there until its window closed.

Each new message has a new id (the old one was never handed on, so no receiver knows it); the
document's outgoing links and its recipients' ``destination_node`` follow in the same transaction
as the withdrawal, so the tracking shows the new node, and nothing is lost or sent twice: a draft
that was being sealed meanwhile makes the sealing roll back (the store refuses to delete a draft
that is gone), and an envelope that was claimed for sending stays in the queue untouched.

What already left this node (handed to a relay or to the old node) is not ours to move any more:
the old node, no longer hosting the unit, refuses it for good (``ENV_UNIT_NOT_HOSTED``) and the
refusal — or the relay's bounce — comes back. Before the recipients' rows turn failed,
:func:`readdress_failed` sends the units the directory now places at another node there (a new
draft, in the transaction that records the refusal); a unit still hosted by the node that refused
it fails as before, so a refusal never loops. What a clerk expects: the document arrives at the
unit's new node, with no action from them. Notices (签收, 催办, 撤回…) are not re-addressed: they
concern a document the old node already has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING

from exchange_protocol.envelope import MessageType
from node.context import NodeContext
from node.errors import BlobMissing, StoreContended, StoreError
from node.federation.routing import UnknownUnit
from node.store import OutgoingLink, Transaction, UnreadableDraft
from node.store.queue_states import ACTIVE, HOLD, WITHDRAWABLE_STATES

if TYPE_CHECKING:
    from node.federation.outbound import Outbound

log = logging.getLogger("gwx.reroute")

POLL_SECONDS = 1.0  # how often the held directory is looked at (a stat; the router re-reads it only if it changed)
DRAFTS_PER_PASS = 10_000


class _InFlight(Exception):
    """A row of the frame to withdraw is no longer waiting (claimed for sending, held)."""

    def __init__(self, message_id: str) -> None:
        super().__init__(message_id)
        self.message_id = message_id


class Rerouter:
    """Re-addresses our waiting documents whenever the held directory moves a unit to another node."""

    def __init__(self, outbound: Outbound) -> None:
        self.outbound = outbound
        self.ctx = outbound.ctx
        self.store = outbound.store
        self._blockers: set[str] = set()  # rows in flight or held that mates of their frame wait on
        self.passes = 0  # passes run (tests, the log)

    async def run(self) -> None:
        """At start-up, then on every change of the directory, and again whenever a message the last
        pass could not move yet waits again; until cancelled."""
        seen: object = object()
        pending: set[str] = set()
        while True:
            held = self._directory_key()
            try:
                if held != seen or (pending and await self._waiting_again(pending)):
                    seen = held
                    pending = await self.reroute_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug or a busy store must not end the watch: a whole pass again shortly
                log.exception("re-routing after a directory change failed; trying again")
                seen = object()
            await asyncio.sleep(POLL_SECONDS)

    async def _waiting_again(self, pending: set[str]) -> bool:
        """Whether one of ``pending`` waits in the queue again (or left it: a draft whose sealing
        rolled back, say); those finished (sent, bounced) are dropped from ``pending`` — and if one held
        back waiting mates of its frame, a pass looks at them again."""
        for message_id in sorted(pending):
            entry = await self.store.queue.get(message_id)
            if entry is None or entry.state in WITHDRAWABLE_STATES:
                return True
            if entry.state not in (ACTIVE, HOLD):
                pending.discard(message_id)
                if message_id in self._blockers:
                    return True
        return False

    def _directory_key(self) -> object:
        directory = getattr(self.ctx.router, "directory", lambda: None)()
        return None if directory is None else (directory.version, directory.issued_at)

    async def reroute_once(self) -> set[str]:
        """One pass; returns the ids of the messages that should move but could not yet (in flight,
        held, being sealed, claimed or put back while the pass read the queue)."""
        self._blockers = set()
        self.passes += 1
        left = await self._drafts() | await self._queued()
        if left:
            log.info("re-routing: %d message(s) for units that moved cannot be taken back yet (in flight, held); "
                     "looked at again once they wait", len(left))
        return left

    async def _drafts(self) -> set[str]:
        left: set[str] = set()
        for destination in await self.store.drafts.draft_destinations():
            # Every draft, also one another worker is sealing (not claimed: its sealing then finds it gone).
            for row in await self.store.drafts.every_draft_for(destination, DRAFTS_PER_PASS):
                if isinstance(row, UnreadableDraft) or row.header.type is not MessageType.DOCUMENT:
                    continue
                groups = regroup(self.ctx, row.header.to_units, destination)
                link = await self.store.links.link(row.header.message_id)
                if groups is None or link is None:
                    continue
                message_id = row.header.message_id

                async def take(tx: Transaction, message_id: str = message_id) -> bool:
                    await self.store.drafts.delete_draft(tx, message_id)
                    return True
                try:
                    await self._readdress(message_id, link, groups, row.payload_digest, row.payload_size, take)
                except StoreContended:  # sealed meanwhile: found in the queue at the next pass
                    left.add(message_id)
        return left

    async def _queued(self) -> set[str]:
        """Every envelope of ours still in the queue, read at one instant with its state: a waiting one
        whose units moved is taken back (with its frame); one not waiting then (in flight, held) is
        noted to be looked at again, as is a waiting one claimed before it could be taken back. Read
        in one statement, no row can be claimed or put back between two reads and so be in neither."""
        left: set[str] = set()
        done: set[str] = set()
        for link, state in await self.store.links.queued_documents():
            if link.message_id in done:
                continue
            groups = regroup(self.ctx, link.units, link.destination)
            if groups is None:
                continue  # nothing of it moves
            if state not in WITHDRAWABLE_STATES:
                left.add(link.message_id)  # in flight or held: taken back once it waits again
                continue
            doc = await self.store.messages.get_outbox(link.doc_id)
            if doc is None:
                continue
            try:
                size = await asyncio.to_thread(self.store.blobs.size_of, doc.package_digest)
            except (OSError, BlobMissing, StoreError):
                log.error("cannot re-address %s (document %s) to %s: its package is no longer held; it stays "
                          "queued for %s", link.message_id, link.doc_id, ", ".join(groups), link.destination,
                          extra={"message_id": link.message_id, "doc_id": link.doc_id})
                continue
            # The envelope may be one header of a bundle (one frame for several destinations behind
            # the same hop, several queue rows): the frame is sent whole, so all its rows are taken
            # back together and sealed again — moved units for their new node, the others for
            # the node they were going to.
            plans: list[tuple[OutgoingLink, dict[str, tuple[str, ...]]]] = []
            for mate_id in await self.store.queue.frame_rows(link.message_id):
                mate = link if mate_id == link.message_id else await self.store.links.link(mate_id)
                if mate is None or mate.type != MessageType.DOCUMENT.value or mate.doc_id != link.doc_id:
                    break  # not a bundle of our document's headers: leave the frame alone
                plans.append((mate, regroup(self.ctx, mate.units, mate.destination) or {mate.destination: mate.units}))
            else:
                try:
                    await self._withdraw_frame(plans, doc.package_digest, size)
                except _InFlight as busy:
                    left.add(busy.message_id)  # in flight (or held) right now: looked at again once it waits
                    # Its waiting mates go with it, then: not looked at each second meanwhile.
                    mates = {mate.message_id for mate, _ in plans} - {busy.message_id}
                    left -= mates
                    if mates:
                        self._blockers.add(busy.message_id)
                done |= {mate.message_id for mate, _ in plans}
        return left

    async def _withdraw_frame(self, plans: list[tuple[OutgoingLink, dict[str, tuple[str, ...]]]],
                              package_digest: str, size: int) -> None:
        """In one transaction: every row of a waiting frame withdrawn and drafted again as ``plans`` say."""
        async with self.store.transaction() as tx:
            for mate, _ in plans:  # every row first: nothing drafted (nor logged) for a frame not taken back
                if not await self.store.queue.withdraw(tx, mate.message_id, "its frame carries units that moved "
                                                       "to another node"):
                    raise _InFlight(mate.message_id)  # rolls back the rows of this frame withdrawn so far
            for mate, groups in plans:
                await self.store.links.remove_link(tx, mate.message_id)
                await add_readdressed(self.outbound, tx, mate, groups, package_digest, size)
        for _, groups in plans:
            for node in groups:
                self.outbound.wake(node)

    async def _readdress(self, old_id: str, link: OutgoingLink, groups: dict[str, tuple[str, ...]],
                         payload_digest: str, payload_size: int,
                         take: Callable[[Transaction], Awaitable[bool]]) -> bool:
        """In one transaction: take the old message out (``take``), add one draft per new node, move the
        links and the recipients' destination node. False when ``take`` found nothing to take."""
        async with self.store.transaction() as tx:
            if not await take(tx):
                return False
            await self.store.links.remove_link(tx, old_id)
            await add_readdressed(self.outbound, tx, link, groups, payload_digest, payload_size)
        for node in groups:
            self.outbound.wake(node)
        return True


def regroup(ctx: NodeContext, units: tuple[str, ...], destination: str) -> dict[str, tuple[str, ...]] | None:
    """The units by the node now hosting them; None when they all still belong to ``destination``
    (or when one is now on this very node: delivered here by a new send, not re-addressed)."""
    groups: dict[str, list[str]] = {}
    for unit in units:
        try:
            node = ctx.router.node_for(unit)
        except UnknownUnit:  # no longer listed at all: it stays where it was going (and bounces there)
            node = destination
        groups.setdefault(node, []).append(unit)
    if set(groups) == {destination}:
        return None
    if ctx.node_id in groups:
        log.warning("unit(s) %s moved onto this node; their document stays addressed to %s",
                    ", ".join(groups[ctx.node_id]), destination)
        return None
    return {node: tuple(codes) for node, codes in groups.items()}


async def add_readdressed(outbound: Outbound, tx: Transaction, link: OutgoingLink,
                          groups: dict[str, tuple[str, ...]], payload_digest: str, payload_size: int) -> None:
    """Inside ``tx``: one new draft of ``link``'s document per node of ``groups``, its link, and the
    recipients' destination node moved; the caller wakes those nodes once ``tx`` has committed."""
    from node.federation.outbound import NewMessage  # outbound → queues → batch sender → here

    store, now = outbound.store, outbound.ctx.clock()
    doc = await store.messages.get_outbox(link.doc_id)  # read while this transaction holds the writer
    if doc is None:
        return
    new = [NewMessage(outbound.header(MessageType.DOCUMENT, node, doc.from_unit, units, now),
                      payload_digest, payload_size, link.doc_id) for node, units in groups.items()]
    await outbound.add(tx, new, now)
    status = {r.unit: r.status for r in doc.recipients}
    for m in new:
        for unit in m.header.to_units:
            if unit in status:
                await store.messages.update_recipient(
                    link.doc_id, unit, status[unit], {"destination_node": m.header.destination_node},
                    actor="node", action="recipient.rerouted",
                    details={"from_node": link.destination, "message_id": m.header.message_id}, tx=tx)
    await store.audit.append(tx, "node", "message.rerouted", {"message_id": link.message_id, "doc_id": link.doc_id},
                             {"from_node": link.destination,
                              "to": {m.header.message_id: m.header.destination_node for m in new}})
    log.info("document %s: message %s for %s re-addressed to %s (its units moved)", link.doc_id,
             link.message_id, link.destination,
             ", ".join(f"{m.header.destination_node} ({m.header.message_id})" for m in new),
             extra={"doc_id": link.doc_id, "message_id": link.message_id})


async def readdress_failed(outbound: Outbound, tx: Transaction, message_id: str,
                           units: Collection[str] | None = None) -> dict[str, tuple[str, ...]]:
    """Our document ``message_id`` was given up on for ``units`` (default: all it carried; refused for good, bounced by a relay,
    its window closed): those the directory now places at another node than the one it was addressed
    to are re-addressed there inside ``tx`` instead of failing — the old node refused them because
    they moved. Returns them by new node (the caller fails only the rest and wakes these nodes once
    ``tx`` has committed). A unit still hosted where it was sent fails as before, so this never loops."""
    store, ctx = outbound.store, outbound.ctx
    link = await store.links.link(message_id)
    if link is None or link.type != MessageType.DOCUMENT.value or link.destination == ctx.node_id:
        return {}
    groups = regroup(ctx, tuple(u for u in link.units if units is None or u in units), link.destination)
    if groups is None:
        return {}
    groups.pop(link.destination, None)
    doc = await store.messages.get_outbox(link.doc_id)
    if not groups or doc is None:
        return {}
    try:
        size = await asyncio.to_thread(store.blobs.size_of, doc.package_digest)
    except (OSError, BlobMissing, StoreError):
        return {}
    await add_readdressed(outbound, tx, link, groups, doc.package_digest, size)
    return groups


__all__ = ["Rerouter", "add_readdressed", "readdress_failed", "regroup"]
