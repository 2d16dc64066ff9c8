"""Applying lifecycle events to stored recipient rows: the state machine meets the database.

``exchange_protocol.states`` decides what an event does to a row; the store offers compare-and-set
updates. These two functions load a row, let the state machine compute the next one, and write it
only if the stored status is still the one the decision was based on — retrying from a fresh read
when another writer got there first. A duplicate or stale event writes nothing.

With ``tx`` the row is read and written through the caller's transaction (so a state change and
the notice it causes, or a notice and the mark that it was applied, commit together). It must be
read through ``tx``: the reader connection sees only committed rows, not what earlier clerk actions
of the same group-commit batch wrote (a 催办 counted, a 签收 made), and a decision on that stale row
would overwrite them. Inside a transaction the writer lock is held, so the row read cannot change
under us; a conflict there is raised rather than retried. A row that changed under every one of the :data:`ATTEMPTS` is
:class:`~node.errors.StoreContended`: busy, transient — the caller tries again later.

:func:`apply_transport_outcome` is the sender's side of the wire: what happened to a message we
sent (acknowledged, bounced, never buildable) moves the rows of the document it carried.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from exchange_protocol.envelope import MessageType
from exchange_protocol.kinds import Role
from exchange_protocol.states import Event, ReceiverStatus, RecipientRow, SenderStatus
from node.errors import StoreConflict, StoreContended, StoreNotFound
from node.store import InboxRow, NodeStore, OutboxRecipient, OutgoingLink, RecipientUpdate, Transaction
from pki.errors import GwxError

log = logging.getLogger("gwx.outbound")

ATTEMPTS = 4


def _sender_row(r: OutboxRecipient) -> RecipientRow:
    return RecipientRow(unit=r.unit, role=Role(r.role), status=SenderStatus(r.status), who=r.who, when=r.when,
                        reason=r.reason, urge_count=r.urge_count, last_urged_at=r.last_urged_at)


def _receiver_row(r: InboxRow) -> RecipientRow:
    return RecipientRow(unit=r.unit, role=Role(r.role), status=ReceiverStatus(r.status), who=r.signed_by,
                        when=r.signed_at, reason=r.return_reason, urge_count=r.urge_count,
                        last_urged_at=r.last_urged_at)


async def apply_sender_event(store: NodeStore, doc_id: str, unit: str, event: Event, *, at: dt.datetime,
                             actor: str, by: str | None = None, reason: str | None = None,
                             details: dict[str, Any] | None = None, tx: Transaction | None = None) -> RecipientRow:
    """Move the sender-side row of ``unit`` for ``doc_id``; returns the row as stored afterwards."""
    for _ in range(ATTEMPTS):
        current = await store.messages.get_outbox_recipient(doc_id, unit, tx=tx)
        if current is None:
            raise StoreNotFound(f"document {doc_id} has no recipient {unit}", doc_id=doc_id, unit=unit)
        before = _sender_row(current)
        after = before.apply(event, at=at, by=by, reason=reason)
        if after == before:
            return before
        try:
            await store.messages.update_recipient(doc_id, unit, before.status.value, _sender_changes(after), actor=actor,
                                                  action=f"recipient.{event.value}", details=details, tx=tx)
            return after
        except StoreConflict:
            if tx is not None:
                raise
            continue
    raise StoreContended(f"recipient {unit} of {doc_id} keeps changing; try again", doc_id=doc_id, unit=unit)


@dataclass(frozen=True)
class SenderMove:
    """One event for one recipient row of a document, for :func:`apply_sender_events`."""

    unit: str
    event: Event
    at: dt.datetime
    by: str | None = None
    reason: str | None = None
    details: dict[str, Any] | None = None


async def apply_sender_events(store: NodeStore, doc_id: str, moves: Sequence[SenderMove], *, actor: str,
                              tx: Transaction) -> None:
    """:func:`apply_sender_event` for several units of one document (no unit twice) inside ``tx``: their
    rows read in one statement and the changed ones written in one (a batch of 签收 from one node is
    one read and one write, not two statements a unit), each with its own audit event as before."""
    rows = await store.messages.get_outbox_recipients(doc_id, [m.unit for m in moves], tx=tx)
    updates = []
    for m in moves:
        if (current := rows.get(m.unit)) is None:
            raise StoreNotFound(f"document {doc_id} has no recipient {m.unit}", doc_id=doc_id, unit=m.unit)
        before = _sender_row(current)
        after = before.apply(m.event, at=m.at, by=m.by, reason=m.reason)
        if after != before:
            updates.append(RecipientUpdate(m.unit, before.status.value, _sender_changes(after),
                                           f"recipient.{m.event.value}", m.details))
    await store.messages.update_recipients(doc_id, updates, actor=actor, tx=tx)


def _sender_changes(after: RecipientRow) -> dict[str, Any]:
    return {"status": after.status.value, "who": after.who, "when": after.when, "reason": after.reason,
            "urge_count": after.urge_count, "last_urged_at": after.last_urged_at}


async def apply_receiver_event(store: NodeStore, doc_id: str, unit: str, event: Event, *, at: dt.datetime,
                               actor: str, by: str | None = None, reason: str | None = None,
                               details: dict[str, Any] | None = None,
                               tx: Transaction | None = None) -> tuple[RecipientRow, RecipientRow]:
    """Move ``unit``'s inbox row for ``doc_id``; returns (before, after)."""
    for _ in range(ATTEMPTS):
        current = await store.messages.get_inbox(doc_id, unit, tx=tx)
        if current is None:
            raise StoreNotFound(f"unit {unit} has no document {doc_id}", doc_id=doc_id, unit=unit)
        before = _receiver_row(current)
        after = before.apply(event, at=at, by=by, reason=reason)
        if after == before:
            return before, after
        changes = _receiver_changes(event, after)
        try:
            await store.messages.update_inbox(doc_id, unit, before.status.value, changes, actor=actor,
                                              action=f"inbox.{event.value}", details=details, tx=tx)
            return before, after
        except StoreConflict:
            if tx is not None:
                raise
            continue
    raise StoreContended(f"inbox row of {unit} for {doc_id} keeps changing; try again", doc_id=doc_id,
                         unit=unit)


async def apply_receiver_event_as_seen(store: NodeStore, seen: InboxRow, event: Event, *, at: dt.datetime,
                                       actor: str, by: str | None = None, reason: str | None = None,
                                       details: dict[str, Any] | None = None,
                                       tx: Transaction) -> tuple[RecipientRow, RecipientRow, InboxRow]:
    """:func:`apply_receiver_event` inside ``tx``, decided on ``seen`` — the row as the caller read it
    before the transaction — instead of a read through ``tx`` first: the update compares every column
    the state machine decides on, so it writes only if the row is still exactly ``seen``. Should the row
    have moved meanwhile (an earlier action of the same group commit, a notice), or should ``seen``
    call for no write or a refusal, the row is read through ``tx`` and decided on as
    :func:`apply_receiver_event` does. One statement instead of two in the common case, under the
    writer lock.
    Returns (before, after, the row as it stands in ``tx`` afterwards)."""
    before = _receiver_row(seen)
    try:
        after: RecipientRow | None = before.apply(event, at=at, by=by, reason=reason)
    except GwxError:
        after = None  # refused on the row as read: judged again on the row as it stands now
    if after is not None and after != before:
        try:
            row = await store.messages.update_inbox(seen.doc_id, seen.unit, before.status.value,
                                                    _receiver_changes(event, after), actor=actor,
                                                    action=f"inbox.{event.value}", details=details, tx=tx,
                                                    also_expected=_decided_on(seen))
            return before, after, row
        except StoreConflict:
            pass  # moved since it was read
    # Nothing to write, refused, or moved: decided on the row as the transaction sees it, as before.
    before, after = await apply_receiver_event(store, seen.doc_id, seen.unit, event, at=at, actor=actor, by=by,
                                               reason=reason, details=details, tx=tx)
    row = await store.messages.get_inbox(seen.doc_id, seen.unit, tx=tx)
    if row is None:
        raise StoreNotFound(f"unit {seen.unit} has no document {seen.doc_id}", doc_id=seen.doc_id, unit=seen.unit)
    return before, after, row


def _decided_on(r: InboxRow) -> dict[str, Any]:
    """The columns of an inbox row :func:`_receiver_row` reads (status is compared on its own)."""
    return {"role": r.role, "signed_by": r.signed_by, "signed_at": r.signed_at, "return_reason": r.return_reason,
            "urge_count": r.urge_count, "last_urged_at": r.last_urged_at}


def _receiver_changes(event: Event, after: RecipientRow) -> dict[str, Any]:
    changes: dict[str, Any] = {"status": after.status.value, "urge_count": after.urge_count,
                               "last_urged_at": after.last_urged_at}
    if event in (Event.SIGNED_FOR,):
        changes.update(signed_by=after.who, signed_at=after.when)
    if event is Event.RETURNED:
        changes.update(return_reason=after.reason)
    return changes


async def apply_forward_event(store: NodeStore, doc_id: str, unit: str, event: Event, *, at: dt.datetime,
                              actor: str, by: str | None = None, reason: str | None = None,
                              details: dict[str, Any] | None = None, tx: Transaction) -> None:
    """Move the row of a copy we forwarded (转发) to ``unit`` as the same sender-side rules say, inside
    ``tx``; a duplicate or stale notice writes nothing. ``details`` join the audit event's."""
    current = await store.forwards.get(doc_id, unit)
    if current is None:
        raise StoreNotFound(f"{doc_id} was not forwarded to {unit}", doc_id=doc_id, unit=unit)
    before = RecipientRow(unit=unit, role=Role.COPY, status=SenderStatus(current.status), who=current.who,
                          when=current.when, reason=current.reason)
    after = before.apply(event, at=at, by=by, reason=reason)
    if after != before:
        await store.forwards.update(tx, doc_id, unit, before.status.value,
                                    {"status": after.status.value, "who": after.who, "when": after.when,
                                     "reason": after.reason}, actor, f"forward.{event.value}",
                                    {"by": by} | (details or {}))


async def apply_transport_outcome(store: NodeStore, message_id: str, event: Event, *, at: dt.datetime,
                                  actor: str, reason: str | None = None, tx: Transaction,
                                  except_units: Collection[str] = ()) -> None:
    """Reflect what happened to a message we sent on the sender-side rows of the document it carried
    (inside ``tx``, with the queue change that records the outcome), but for ``except_units`` (sent
    on by another message meanwhile). Notices carry no rows: nothing.

    A document's units move together, as :func:`apply_sender_events` moves a batch of 签收: their rows
    read in one statement, the changed ones written in one, each with its own audit event (a fan-out
    message to a county names hundreds of units: two statements, not two a unit). A unit the state
    machine refuses, or one without a row, is logged and left as it was; the others move."""
    link = await store.links.link(message_id)
    if link is None or link.type not in (MessageType.DOCUMENT.value, MessageType.FORWARD.value):
        return
    units = [u for u in link.units if u not in except_units]
    if link.type == MessageType.FORWARD.value:
        for unit in units:
            try:
                await apply_forward_event(store, link.doc_id, unit, event, at=at, actor=actor, reason=reason, tx=tx)
            except GwxError as exc:  # raised before any write: the transaction stays usable
                _cannot_apply(link, message_id, unit, event, exc)
        return
    if not units:
        return
    rows = await store.messages.get_outbox_recipients(link.doc_id, units, tx=tx)
    details = {"message_id": message_id}
    updates = []
    for unit in dict.fromkeys(units):  # (a unit named twice moves once)
        try:
            if (current := rows.get(unit)) is None:
                raise StoreNotFound(f"document {link.doc_id} has no recipient {unit}", doc_id=link.doc_id,
                                    unit=unit)
            before = _sender_row(current)
            after = before.apply(event, at=at, reason=reason)
        except GwxError as exc:  # decided before any write: the others still move
            _cannot_apply(link, message_id, unit, event, exc)
            continue
        if after != before:
            updates.append(RecipientUpdate(unit, before.status.value, _sender_changes(after),
                                           f"recipient.{event.value}", details))
    await store.messages.update_recipients(link.doc_id, updates, actor=actor, tx=tx)


def _cannot_apply(link: OutgoingLink, message_id: str, unit: str, event: Event, exc: GwxError) -> None:
    log.warning("cannot apply %s to %s/%s: %s", event.value, link.doc_id, unit, exc,
                extra={"destination": link.destination, "message_id": message_id, "code": exc.code})
