"""Records of the exchange itself: envelope drafts and the links from sent messages to documents.

* :class:`Drafts` — messages whose envelope cannot be built yet because the destination's
  encryption certificate is unknown; the payload is already durable: a blob, or for a small one
  (a notice) the row's own ``payload`` column, committed with it. Once the envelope is
  built, the sender deletes the draft (``delete_draft``) and enqueues the envelope in one transaction.
  The ``header`` column holds the :class:`~exchange_protocol.envelope.HeaderDraft` in its JSON form;
  rows written before that (keys ``message_id``, ``from_unit``…, no origin) are still read, with
  this node (``node_id``) as their origin. A row the header check refuses (an older gwx queued
  bounces with no recipient unit) is returned as an :class:`UnreadableDraft`, one row at a time,
  so it never blocks the destination's other drafts.
* :class:`OutgoingLinks` — which document and units each message we sent concerns, so what comes
  back (a transport receipt, a 签收, a bounce) is matched against what we actually sent to that node.

(Peers' certificates, the third record the sender keeps, live with the peers in :mod:`.peers`.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from exchange_protocol.canonical import canonical_json
from exchange_protocol.envelope import HeaderDraft, format_time
from exchange_protocol.states import SenderStatus
from node.errors import StoreContended, StoreCorrupt
from node.store.queue_states import UNFINISHED_STATES, ordered
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time
from node.store.values import Draft, LocalDelivery, OutgoingLink, UnreadableDraft
from pki.errors import GwxError


class Drafts:
    """``node_id``: this node, the origin of every draft (old rows did not record it)."""

    def __init__(self, db: Database, node_id: str | None) -> None:
        self._db = db
        self._node_id = node_id

    async def add_draft(self, tx: SqliteTransaction, draft: Draft) -> None:
        if draft.payload is not None and (len(draft.payload) != draft.payload_size
                                          or hashlib.sha256(draft.payload).hexdigest() != draft.payload_digest):
            raise StoreCorrupt(f"draft {draft.header.message_id}: its payload does not match its digest and size")
        await tx.send(
            "INSERT INTO drafts (message_id, destination, type, header, payload_digest, payload_size,"
            " created_at, expires_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (draft.header.message_id, draft.header.destination_node, draft.header.type.value,
             canonical_json(draft.header.to_json()).decode("utf-8"), draft.payload_digest, draft.payload_size, to_db_time(draft.created_at),
             to_db_time(draft.expires_at) if draft.expires_at else None, draft.payload))

    async def drafts_for(self, destination: str, limit: int = 100) -> list[Draft | UnreadableDraft]:
        """The destination's drafts, oldest first; a row that cannot be read comes back as an
        :class:`UnreadableDraft` in its place, never as an error that hides the others. (Several
        PostgreSQL workers: the ones no other worker holds, claimed — what the sealing loop takes.)"""
        return await self.every_draft_for(destination, limit)

    async def every_draft_for(self, destination: str, limit: int = 100) -> list[Draft | UnreadableDraft]:
        """The destination's drafts, oldest first, whichever worker holds them, none claimed: what the
        rerouter reads (it moves a draft another worker is sealing: that sealing finds it gone)."""
        rows = await self._db.fetchall(
            "SELECT * FROM drafts WHERE destination = ? ORDER BY message_id LIMIT ?", (destination, limit))
        return [self._draft(r) for r in rows]

    async def expired_drafts(self, destination: str, now: datetime,
                             limit: int = 100) -> list[Draft | UnreadableDraft]:
        rows = await self._db.fetchall(
            "SELECT * FROM drafts WHERE destination = ? AND expires_at IS NOT NULL AND expires_at <= ?"
            " ORDER BY message_id LIMIT ?", (destination, to_db_time(now), limit))
        return [self._draft(r) for r in rows]

    async def delete_draft(self, tx: SqliteTransaction, message_id: str) -> None:
        """Delete a draft; :class:`StoreContended` (transient) if it is gone — re-addressed by
        :mod:`node.federation.reroute` while it was being sealed — so the envelope sealed from it is
        rolled back with this transaction instead of being queued beside its re-addressed copy."""
        if not await tx.execute("DELETE FROM drafts WHERE message_id = ?", (message_id,)):
            raise StoreContended(f"draft {message_id} was re-addressed or dropped meanwhile", message_id=message_id)

    @contextlib.asynccontextmanager
    async def holding(self, message_ids: Sequence[str]) -> AsyncIterator[None]:
        """While a builder round seals ``message_ids``: nothing to keep on SQLite (one process seals); on
        PostgreSQL the drafts' lease is renewed (:class:`node.store.postgresql.leases.LeasedDrafts`)."""
        yield

    async def get_draft(self, message_id: str) -> Draft | UnreadableDraft | None:
        row = await self._db.lookup_one("SELECT * FROM drafts WHERE message_id = ?", (message_id,))
        return self._draft(row) if row else None

    async def draft_destinations(self) -> list[str]:
        return [r[0] for r in await self._db.fetchall("SELECT DISTINCT destination FROM drafts")]

    async def draft_counts(self) -> dict[str, int]:
        rows = await self._db.fetchall("SELECT destination, COUNT(*) FROM drafts GROUP BY destination")
        return {r[0]: r[1] for r in rows}

    async def oldest_drafts(self) -> dict[str, datetime]:
        """{destination: when its oldest draft (waiting for the destination's certificate) was written}."""
        rows = await self._db.fetchall("SELECT destination, MIN(created_at) FROM drafts GROUP BY destination")
        return {r[0]: from_db_time(r[1]) for r in rows}  # type: ignore[misc]

    def _draft(self, r: Any) -> Draft | UnreadableDraft:
        try:
            raw = json.loads(r["header"])
            if not isinstance(raw, dict):
                raise StoreCorrupt(f"draft {r['message_id']} has a header that is not a JSON object")
            header = HeaderDraft.from_json(_legacy_header(raw, self._node_id or "", r["destination"]))
        except GwxError as exc:
            return UnreadableDraft(r["message_id"], r["destination"], exc)
        except ValueError as exc:  # not JSON at all
            return UnreadableDraft(r["message_id"], r["destination"],
                                   StoreCorrupt(f"draft {r['message_id']} has an unreadable header: {exc}"))
        return Draft(header, r["payload_digest"], r["payload_size"],
                     from_db_time(r["created_at"]), from_db_time(r["expires_at"]),  # type: ignore[arg-type]
                     None if r["payload"] is None else bytes(r["payload"]))


class OutgoingLinks:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_links(self, tx: SqliteTransaction, links: Sequence[OutgoingLink]) -> None:
        await tx.send_many(
            "INSERT INTO outgoing (message_id, doc_id, type, destination, units, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(o.message_id, o.doc_id, o.type, o.destination, json.dumps(list(o.units)), to_db_time(o.created_at))
             for o in links])

    async def link(self, message_id: str) -> OutgoingLink | None:
        row = await self._db.lookup_one("SELECT * FROM outgoing WHERE message_id = ?", (message_id,))
        return _link(row) if row else None

    async def links_for(self, doc_id: str, type: str = "document") -> list[OutgoingLink]:
        rows = await self._db.fetchall(
            "SELECT * FROM outgoing WHERE doc_id = ? AND type = ? ORDER BY message_id", (doc_id, type))
        return [_link(r) for r in rows]

    async def remove_link(self, tx: SqliteTransaction, message_id: str) -> None:
        """A message that will never be sent (re-addressed as new ones before it left)."""
        await tx.execute("DELETE FROM outgoing WHERE message_id = ?", (message_id,))

    async def queued_documents(self) -> list[tuple[OutgoingLink, str]]:
        """Documents we sent whose envelope is still in the queue, never handed on (waiting, in flight,
        held), each with its queue row's state — all read at one instant (one statement): a row not
        waiting now is in the list all the same, in the state it is in."""
        unfinished = ordered(UNFINISHED_STATES)
        rows = await self._db.fetchall(
            "SELECT o.*, q.state AS queue_state FROM outgoing o JOIN queue q ON q.message_id = o.message_id"
            f" WHERE o.type = 'document' AND q.state IN ({','.join('?' * len(unfinished))}) ORDER BY o.message_id",
            unfinished)
        return [(_link(r), r["queue_state"]) for r in rows]

    async def interrupted_local_deliveries(self, node_id: str) -> list[LocalDelivery]:
        """Documents sent to units of ``node_id`` (this node) whose recipients are still queued."""
        rows = await self._db.fetchall(
            "SELECT o.message_id, o.units, o.created_at, b.from_unit, b.package_digest FROM outgoing o"
            " JOIN outbox b ON b.doc_id = o.doc_id WHERE o.destination = ? AND o.type = 'document'"
            " AND EXISTS (SELECT 1 FROM outbox_recipients r WHERE r.doc_id = o.doc_id"
            " AND r.destination_node = ? AND r.status = ?)", (node_id, node_id, SenderStatus.QUEUED.value))
        return [LocalDelivery(r["message_id"], r["from_unit"], tuple(json.loads(r["units"])), r["package_digest"],
                              from_db_time(r["created_at"])) for r in rows]  # type: ignore[arg-type]

    async def interrupted_local_forwards(self, node_id: str) -> list[LocalDelivery]:
        """转发 to units of ``node_id`` (this node) whose forwarded copies are still queued: the
        forwarder's package (its own inbox row of the document) and the cover 通知's local message."""
        rows = await self._db.fetchall(
            # One row per forward: the copies' rows agree on the forwarder, its package and the cover
            # (MIN picks that one value in both dialects; PostgreSQL takes no bare column beside GROUP BY).
            "SELECT o.message_id, o.units, o.created_at, MIN(f.from_unit) AS from_unit,"
            " MIN(i.package_digest) AS package_digest, MIN(c.message_id) AS cover"
            " FROM outgoing o JOIN forwarded f ON f.doc_id = o.doc_id AND f.destination_node = ? AND f.status = ?"
            " AND f.unit IN (SELECT value FROM json_each(o.units))"
            " JOIN inbox i ON i.doc_id = f.doc_id AND i.unit_code = f.from_unit"
            " JOIN outgoing c ON c.doc_id = f.cover_doc_id AND c.destination = ? AND c.type = 'document'"
            " WHERE o.destination = ? AND o.type = 'forward' GROUP BY o.message_id ORDER BY o.message_id",
            (node_id, SenderStatus.QUEUED.value, node_id, node_id))
        return [LocalDelivery(r["message_id"], r["from_unit"], tuple(json.loads(r["units"])), r["package_digest"],
                              from_db_time(r["created_at"]), cover_message_id=r["cover"])  # type: ignore[arg-type]
                for r in rows]


def _legacy_header(raw: dict[str, Any], origin: str, destination: str) -> dict[str, Any]:
    """A header written before the drafts held the HeaderDraft's own JSON form, in that form."""
    if "message_id" not in raw:
        return raw
    renamed = {"message_id": "id", "from_unit": "from", "to_units": "to"}
    current = {renamed.get(k, k): v for k, v in raw.items()}
    for name in ("created", "expires"):  # were ISO 8601 with microseconds and +00:00
        try:
            current[name] = format_time(datetime.fromisoformat(current[name]))
        except (KeyError, TypeError, ValueError):
            pass  # HeaderDraft.from_json names what is wrong
    return {"v": 1, "origin": origin, "destination": destination, **current}


def _link(row: Any) -> OutgoingLink:
    return OutgoingLink(row["message_id"], row["doc_id"], row["type"], row["destination"],
                        tuple(json.loads(row["units"])), from_db_time(row["created_at"]))  # type: ignore[arg-type]
