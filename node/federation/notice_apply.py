"""Applying notices (签收, 退回, transport-ack, bounce, 答复, 撤回, 催办) onto the rows they concern,
inside the transaction the processor (:mod:`node.federation.processor`) opens for their message —
or, for a unit on this same node, the clerk's own.

Notices move only rows of documents we sent to the notice's origin (the ``outgoing`` links); 撤回
and 催办 only inbox rows of the document that origin delivered here. A recall that arrives after
签收/退回 is recorded as refused. A batch (several notices in one payload) is checked notice by
notice; one its origin may not send is audited and left out. The rows a batch of 签收 or 退回
moves are read and written together: one statement each, an audit event a unit — as are the rows
one notice naming several units moves (a node's transport-ack for all its units of a document). A 签收/退回
carrying its unit-signed statement applies only if the statement proves it
(:mod:`node.federation.notice_evidence`), and its audit event says what it rests on.

A 转发告知 (``forwarded``) is the issuer's side of a 转发: taken only from the node we delivered the
document to, from a unit it was delivered to (the header's ``from``, which the acceptor checked
that node hosts), answering that very message; it is kept for the issuer's track
(``forwards.note_forwarded_on``) and moves no row.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from exchange_protocol.envelope import HeaderDraft, MessageType
from exchange_protocol.errors import IllegalTransition
from exchange_protocol.notices import Notice
from exchange_protocol.states import Event
from node.documents.tracking import (
    SenderMove,
    apply_forward_event,
    apply_receiver_event,
    apply_sender_event,
    apply_sender_events,
)
from node.errors import NodeError, NodeUnavailable
from node.federation.notice_evidence import EvidenceChecker, EvidenceRefused
from node.federation.outbound import Outbound
from node.federation.reroute import readdress_failed
from node.store import NodeStore, OutgoingLink, Transaction
from node.store.forwards import ForwardedOn
from node.supervision.escalation import Escalator
from pki.errors import ErrorKind

log = logging.getLogger("gwx.processing")

NOTICE_EVENTS_SENDER = {MessageType.RECEIPT: Event.SIGNED_FOR, MessageType.RETURN: Event.RETURNED,
                        MessageType.TRANSPORT_ACK: Event.DELIVERED, MessageType.BOUNCE: Event.FAILED,
                        MessageType.REPLY: None}
# Batched notices whose rows a batch moves together (a 答复 moves no row, a 转发告知 keeps a note).
WRITTEN_TOGETHER = frozenset({MessageType.RECEIPT, MessageType.RETURN})
NOTICE_EVENTS_RECEIVER = {MessageType.RECALL: Event.RECALLED, MessageType.URGE: Event.URGED}


class NoticeNotOurs(NodeError):
    """A notice about rows its origin has no say over (not the sender, not the unit it delivered to)."""

    code = "NOTICE_NOT_OURS"
    kind = ErrorKind.FORBIDDEN


@dataclass(frozen=True)
class Delivery:
    """One message to apply, whether it came in an envelope (``header`` is then its
    :class:`EnvelopeHeader`) or from a unit on this same node (a draft that was never sealed)."""

    header: HeaderDraft
    payload_digest: str
    received_at: dt.datetime


class NoticeApplier:
    """Applies notices inside a caller's transaction (see the module header)."""

    def __init__(self, store: NodeStore, outbound: Outbound, escalator: Escalator, evidence: EvidenceChecker) -> None:
        self.store = store
        self.outbound = outbound
        self.escalator = escalator
        self.evidence = evidence

    async def apply_all(self, d: Delivery, notices: tuple[Notice, ...], tx: Transaction,
                             verdicts: dict | None = None) -> set[str]:
        """Apply the notices of one payload inside ``tx``, each authorised on its own.

        A single notice the origin has no say over refuses its message (:class:`NoticeNotOurs`). In
        a batch such a notice is left out and recorded in the audit trail, and the others apply;
        only a batch with no notice left refuses the message. (The check runs before any write for
        that notice, so the transaction stays usable.)"""
        resent_to: set[str] = set()
        refused: list[NoticeNotOurs | EvidenceRefused] = []
        # A batch of 签收 or 退回 answers one message: its link is read once, and the rows its
        # notices move are read and written together at the end (apply_sender_events), not one by one
        # (no unit twice: decode_notices refuses such a batch).
        together = len(notices) > 1 and d.header.type in WRITTEN_TOGETHER
        link = await self.store.links.link(d.header.in_reply_to or "") if together else None
        moves: list[SenderMove] = []
        for notice in notices:
            try:
                if together and (link is None or link.type != MessageType.FORWARD.value):
                    details = await self._authorised(d, notice, link, tx, verdicts)
                    event = NOTICE_EVENTS_SENDER[notice.type]
                    moves += [SenderMove(unit, event, notice.at, notice.by, notice.reason, details)
                              for unit in notice.units]
                    continue
                resent_to.update(await self.apply(d, notice, tx, verdicts))
            except (NoticeNotOurs, EvidenceRefused) as exc:
                if len(notices) == 1:
                    raise
                refused.append(exc)
                await self.store.audit.append(tx, f"node:{d.header.origin_node}", f"notice.{notice.type.value}.refused",
                                              {"doc_id": notice.doc_id, "message_id": d.header.message_id},
                                              {"units": list(notice.units), "by": notice.by, "error": exc.code,
                                               "reason": exc.message})
        if moves:
            await apply_sender_events(self.store, link.doc_id, moves, actor=f"node:{d.header.origin_node}", tx=tx)
        if refused:
            log.warning("%d of %d notices in %s refused: %s", len(refused), len(notices), d.header.message_id,
                        refused[0].message, extra={"message_id": d.header.message_id, "code": refused[0].code})
            if len(refused) == len(notices):
                raise refused[0]
        return resent_to

    async def apply(self, d: Delivery, notice: Notice, tx: Transaction,
                           verdicts: dict | None = None) -> tuple[str, ...]:
        """Apply a notice inside ``tx`` (the caller commits it with whatever caused or consumed it);
        ``verdicts``: its statement's, verified beforehand (``EvidenceChecker.verify_all``).

        Returns the nodes to wake once ``tx`` has committed: a bounce of our document for units that
        have moved to another node since sends them there instead (:func:`readdress_failed`)."""
        if notice.type is not d.header.type:
            raise NoticeNotOurs(f"envelope type {d.header.type.value} carries a {notice.type.value} notice")
        actor = f"node:{d.header.origin_node}"
        if notice.type is MessageType.FORWARDED:
            await self._forwarded_on(d, notice, tx, actor)
            return ()
        if notice.type in NOTICE_EVENTS_SENDER:
            link = await self.store.links.link(d.header.in_reply_to or "")
            details = await self._authorised(d, notice, link, tx, verdicts)
            evidence = details.get("evidence")
            event = NOTICE_EVENTS_SENDER[notice.type]
            if link.type == MessageType.FORWARD.value:  # a copy we forwarded (转发): its own rows
                if event is not None:
                    for unit in notice.units:
                        await apply_forward_event(self.store, link.doc_id, unit, event, at=notice.at, actor=actor,
                                                  by=notice.by, reason=notice.reason,
                                                  details={"evidence": evidence} if evidence else None, tx=tx)
                return ()
            if event is None:  # 答复: recorded against the document it answers
                await self.store.audit.append(tx, actor, f"notice.{notice.type.value}",
                                              {"doc_id": link.doc_id, "message_id": d.header.message_id},
                                              {"units": list(notice.units), "by": notice.by, "text": notice.text})
                return ()
            moved: dict[str, tuple[str, ...]] = {}
            if notice.type is MessageType.BOUNCE:
                moved = await readdress_failed(self.outbound, tx, link.message_id, notice.units)
            resent = {u for units in moved.values() for u in units}
            units = [u for u in notice.units if u not in resent]
            if len(units) == 1:
                await apply_sender_event(self.store, link.doc_id, units[0], event, at=notice.at, actor=actor,
                                         by=notice.by, reason=notice.reason, details=details, tx=tx)
            elif units:  # a transport-ack (or bounce) naming a township's twenty units: one read, one write
                await apply_sender_events(self.store, link.doc_id, [SenderMove(u, event, notice.at, notice.by,
                                                                               notice.reason, details) for u in units],
                                          actor=actor, tx=tx)
            return tuple(moved)
        event = NOTICE_EVENTS_RECEIVER[notice.type]
        supervisors: list[str] = []
        for unit in notice.units:
            row = await self.store.messages.get_inbox(notice.doc_id, unit, tx=tx)
            if row is None and await self._document_still_pending(d):
                raise NodeUnavailable(f"{notice.type.value} for {notice.doc_id} arrived before its document was "
                                      "applied", code="NOTICE_EARLY", doc_id=notice.doc_id)
            if row is None or row.message_id != d.header.in_reply_to or row.from_unit != d.header.from_unit:
                raise NoticeNotOurs(f"{notice.type.value} for {notice.doc_id}/{unit} does not match what we hold",
                                    doc_id=notice.doc_id, unit=unit)
            try:
                before, after = await apply_receiver_event(
                    self.store, notice.doc_id, unit, event, at=notice.at, actor=actor, by=notice.by,
                    reason=notice.reason, details={"message_id": d.header.message_id}, tx=tx)
                if event is Event.RECALLED and after != before:  # a recall ends the row's 督办 too
                    supervisor_node = await self.escalator.settled(tx, notice.doc_id, unit, row.from_unit, row.title,
                                                                   row.deadline, "recalled", notice.by or row.from_unit)
                    supervisors += [supervisor_node] if supervisor_node else []
            except IllegalTransition as exc:
                # A recall that arrives after 签收 or 退回 has no effect; the sender already has (or
                # will get) the receipt, which wins. Recorded, not an error of the envelope.
                await self.store.audit.append(tx, actor, f"inbox.{event.value}.refused",
                                              {"doc_id": notice.doc_id, "unit": unit},
                                              {"reason": exc.message, "message_id": d.header.message_id})
        return tuple(dict.fromkeys(supervisors))

    async def _authorised(self, d: Delivery, notice: Notice, link: OutgoingLink | None, tx: Transaction,
                          verdicts: dict | None) -> dict[str, Any]:
        """Refuse a notice about a message we sent (:class:`NoticeNotOurs`, :class:`EvidenceRefused`)
        before it writes anything; else the details its rows' audit events carry."""
        if notice.type is not d.header.type:
            raise NoticeNotOurs(f"envelope type {d.header.type.value} carries a {notice.type.value} notice")
        if link is None or not self._may_notify(link, notice, d.header.origin_node):
            raise NoticeNotOurs(f"{notice.type.value} from {d.header.origin_node} does not match a message we sent it",
                                in_reply_to=d.header.in_reply_to, doc_id=notice.doc_id)
        evidence = await self.evidence.accept(tx, notice, link, verdicts)  # before any write: refused, unchanged
        return {"message_id": d.header.message_id} | ({"evidence": evidence} if evidence else {})

    async def _forwarded_on(self, d: Delivery, notice: Notice, tx: Transaction, actor: str) -> None:
        link = await self.store.links.link(d.header.in_reply_to or "")
        if (link is None or link.type != MessageType.DOCUMENT.value or link.destination != d.header.origin_node
                or link.doc_id != notice.doc_id or d.header.from_unit not in link.units):
            raise NoticeNotOurs(f"转发告知 from {d.header.origin_node} ({d.header.from_unit}) does not match a document "
                                "we sent that unit", in_reply_to=d.header.in_reply_to, doc_id=notice.doc_id)
        await self.store.forwards.note_forwarded_on(tx, ForwardedOn(
            link.doc_id, d.header.from_unit, notice.text or "", notice.units, notice.by, notice.at,
            d.header.origin_node), actor)

    def _may_notify(self, link: OutgoingLink, notice: Notice, origin: str) -> bool:
        """Whether ``origin`` may tell us ``notice`` about the message ``link`` records: the node we sent
        it to, about that document and its units; or, for a bounce, a relay (which cannot name the
        document: the bounced message does)."""
        if not set(notice.units) <= set(link.units):
            return False
        if origin == link.destination:
            return notice.doc_id == link.doc_id
        # A relay's bounce. Only nodes on the message's path have seen its id (headers travel nowhere
        # else), and such a node could as well drop the envelope; the destination's own notices
        # still win afterwards (states: after failed, delivered and 签收 move the row on). Which
        # nodes the path took is not checked: routes change with the directory, ties have choices.
        return notice.type is MessageType.BOUNCE and notice.doc_id is None

    async def _document_still_pending(self, d: Delivery) -> bool:
        """Whether the document a notice answers was accepted from the same origin but not yet applied."""
        reply_to = d.header.in_reply_to
        document = await self.store.messages.get_received(reply_to) if reply_to else None
        return document is not None and document.origin_node == d.header.origin_node and document.state == "new"
