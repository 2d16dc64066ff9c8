"""Store parts of the exchange itself: envelope drafts, outgoing links, peer credentials.

* drafts — messages whose envelope cannot be built yet because the destination's encryption
  certificate is unknown; the payload is already a durable blob. Once the envelope is built, the
  outbound queue deletes the draft (``delete_draft``) and enqueues the envelope in one transaction.
  The ``header`` column holds the :class:`~exchange_protocol.envelope.HeaderDraft` in its JSON
  form; rows written before that (keys ``message_id``, ``from_unit``…, no origin) are still read.
* outgoing — which document and units each message we sent concerns, so what comes back (a
  transport receipt, a 签收, a bounce) is matched against what we actually sent to that node.
* peer_credentials — a peer's signing and encryption certificates as last fetched and verified.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exchange_protocol.canonical import canonical_json
from exchange_protocol.envelope import HeaderDraft, format_time
from node.store.sqlite.db import Database, Transaction, from_db_time, to_db_time


@dataclass(frozen=True)
class Draft:
    header: HeaderDraft  # message id, type and destination included
    payload_digest: str
    payload_size: int
    created_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class Outgoing:
    message_id: str
    doc_id: str
    type: str
    destination: str
    units: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class StoredPeerCredentials:
    node_id: str
    signing_cert: str
    encryption_cert: str
    chain: str
    fetched_at: datetime


class Exchange:
    """``node_id``: this node, the origin of every draft (old rows did not record it)."""

    def __init__(self, db: Database, node_id: str) -> None:
        self._db = db
        self._node_id = node_id

    # --- drafts ---------------------------------------------------------------------------------
    async def add_draft(self, tx: Transaction, draft: Draft) -> None:
        await tx.execute(
            "INSERT INTO drafts (message_id, destination, type, header, payload_digest, payload_size,"
            " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (draft.header.message_id, draft.header.destination_node, draft.header.type.value,
             canonical_json(draft.header.to_json()).decode("utf-8"),
             draft.payload_digest, draft.payload_size, to_db_time(draft.created_at),
             to_db_time(draft.expires_at) if draft.expires_at else None))

    async def drafts_for(self, destination: str, limit: int = 100) -> list[Draft]:
        rows = await self._db.fetchall(
            "SELECT * FROM drafts WHERE destination = ? ORDER BY message_id LIMIT ?", (destination, limit))
        return [self._draft(r) for r in rows]

    async def expired_drafts(self, destination: str, now: datetime, limit: int = 100) -> list[Draft]:
        rows = await self._db.fetchall(
            "SELECT * FROM drafts WHERE destination = ? AND expires_at IS NOT NULL AND expires_at <= ?"
            " ORDER BY message_id LIMIT ?", (destination, to_db_time(now), limit))
        return [self._draft(r) for r in rows]

    async def delete_draft(self, tx: Transaction, message_id: str) -> None:
        await tx.execute("DELETE FROM drafts WHERE message_id = ?", (message_id,))

    async def draft_destinations(self) -> list[str]:
        return [r[0] for r in await self._db.fetchall("SELECT DISTINCT destination FROM drafts")]

    async def draft_counts(self) -> dict[str, int]:
        rows = await self._db.fetchall("SELECT destination, COUNT(*) FROM drafts GROUP BY destination")
        return {r[0]: r[1] for r in rows}

    # --- outgoing links ---------------------------------------------------------------------------
    async def add_outgoing(self, tx: Transaction, items: Sequence[Outgoing]) -> None:
        await tx.executemany(
            "INSERT INTO outgoing (message_id, doc_id, type, destination, units, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(o.message_id, o.doc_id, o.type, o.destination, json.dumps(list(o.units)), to_db_time(o.created_at))
             for o in items])

    async def outgoing(self, message_id: str) -> Outgoing | None:
        row = await self._db.fetchone("SELECT * FROM outgoing WHERE message_id = ?", (message_id,))
        return _outgoing(row) if row else None

    async def outgoing_for(self, doc_id: str, type: str = "document") -> list[Outgoing]:
        rows = await self._db.fetchall(
            "SELECT * FROM outgoing WHERE doc_id = ? AND type = ? ORDER BY message_id", (doc_id, type))
        return [_outgoing(r) for r in rows]

    def _draft(self, r) -> Draft:
        raw = _legacy_header(json.loads(r["header"]), self._node_id, r["destination"])
        return Draft(HeaderDraft.from_json(raw), r["payload_digest"], r["payload_size"],
                     from_db_time(r["created_at"]), from_db_time(r["expires_at"]))

    # --- peer credentials -----------------------------------------------------------------------
    async def peer_credentials(self, node_id: str) -> StoredPeerCredentials | None:
        row = await self._db.fetchone("SELECT * FROM peer_credentials WHERE node_id = ?", (node_id,))
        if row is None:
            return None
        return StoredPeerCredentials(row["node_id"], row["signing_cert"], row["encryption_cert"], row["chain"],
                                     from_db_time(row["fetched_at"]))

    async def save_peer_credentials(self, creds: StoredPeerCredentials) -> None:
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO peer_credentials (node_id, signing_cert, encryption_cert, chain, fetched_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET signing_cert = excluded.signing_cert,"
                " encryption_cert = excluded.encryption_cert, chain = excluded.chain, fetched_at = excluded.fetched_at",
                (creds.node_id, creds.signing_cert, creds.encryption_cert, creds.chain, to_db_time(creds.fetched_at)))


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


def _outgoing(row) -> Outgoing:
    return Outgoing(row["message_id"], row["doc_id"], row["type"], row["destination"],
                    tuple(json.loads(row["units"])), from_db_time(row["created_at"]))
