"""转发 in SQLite (migration 10): what a unit forwarded, and how a forwarded document came in.

Implements :class:`node.store.forwards.ForwardStore`; the issuer's record of a forward it was told
of is ``forwarded_on`` (migration 19). The forwarding side's rows move like
outbox recipient rows (the sender-side state machine, compare-and-set on the status, an audit
event per change); the receiving side's row only says who forwarded it and with which cover.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from node.errors import StoreConflict, StoreDuplicate
from node.store.forwards import ForwardedCopy, ForwardedIn, ForwardedOn
from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time

_COLUMNS = "doc_id, unit, cover_doc_id, from_unit, destination_node, status, status_by, status_at, reason, created_at"


class Forwards:
    def __init__(self, db: Database, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    async def add(self, tx: SqliteTransaction, copies: Sequence[ForwardedCopy], actor: str) -> None:
        units = [c.unit for c in copies]
        marks = ",".join("?" * len(units))
        held = await tx.fetchall(f"SELECT unit FROM forwarded WHERE doc_id = ? AND unit IN ({marks})",
                                 (copies[0].doc_id, *units))
        if held:
            raise StoreDuplicate(f"{copies[0].doc_id} was already forwarded to {held[0][0]}",
                                 doc_id=copies[0].doc_id, unit=held[0][0])
        await tx.executemany(
            f"INSERT INTO forwarded ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.doc_id, c.unit, c.cover_doc_id, c.from_unit, c.destination_node, c.status, c.who,
              None if c.when is None else to_db_time(c.when), c.reason, to_db_time(c.created_at)) for c in copies])
        await self._audit.append(tx, actor, "forward.create", {"doc_id": copies[0].doc_id, "unit": copies[0].from_unit},
                                 {"cover_doc_id": copies[0].cover_doc_id, "units": units})

    async def get(self, doc_id: str, unit: str) -> ForwardedCopy | None:
        row = await self._db.lookup_one(f"SELECT {_COLUMNS} FROM forwarded WHERE doc_id = ? AND unit = ?", (doc_id, unit))
        return _copy(row) if row else None

    async def for_cover(self, cover_doc_id: str) -> list[ForwardedCopy]:
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM forwarded WHERE cover_doc_id = ? ORDER BY unit",
                                       (cover_doc_id,))
        return [_copy(r) for r in rows]

    async def update(self, tx: SqliteTransaction, doc_id: str, unit: str, expected_status: str,
                     changes: dict[str, Any], actor: str, action: str, details: dict[str, Any]) -> None:
        when = changes.get("when")
        changed = await tx.execute(
            "UPDATE forwarded SET status = ?, status_by = ?, status_at = ?, reason = ?"
            " WHERE doc_id = ? AND unit = ? AND status = ?",
            (changes["status"], changes.get("who"), None if when is None else to_db_time(when), changes.get("reason"),
             doc_id, unit, expected_status))
        if not changed:
            raise StoreConflict(f"forwarded copy {doc_id}/{unit} changed meanwhile", doc_id=doc_id, unit=unit)
        await self._audit.append(tx, actor, action, {"doc_id": doc_id, "unit": unit}, details)

    async def note_received(self, tx: SqliteTransaction, item: ForwardedIn) -> None:
        await tx.execute("INSERT OR IGNORE INTO forwarded_in (doc_id, unit, forwarded_by, cover_message_id)"
                         " VALUES (?, ?, ?, ?)", (item.doc_id, item.unit, item.forwarded_by, item.cover_message_id))

    async def received(self, doc_id: str, unit: str) -> tuple[ForwardedIn, str | None] | None:
        """How ``unit`` got ``doc_id`` by 转发, with the cover's 公文标识 once the cover is in its inbox."""
        row = await self._db.lookup_one(
            "SELECT f.doc_id, f.unit, f.forwarded_by, f.cover_message_id, i.doc_id AS cover FROM forwarded_in f"
            " LEFT JOIN inbox i ON i.message_id = f.cover_message_id AND i.unit_code = f.unit"
            " AND i.from_unit = f.forwarded_by"  # a cover is the forwarder's own document
            " WHERE f.doc_id = ? AND f.unit = ?", (doc_id, unit))
        if row is None:
            return None
        return ForwardedIn(row["doc_id"], row["unit"], row["forwarded_by"], row["cover_message_id"]), row["cover"]

    async def note_forwarded_on(self, tx: SqliteTransaction, item: ForwardedOn, actor: str) -> bool:
        """The issuer's record of a forward it was told of; the same notice again (a replay, a resend)
        changes nothing. Returns whether it was new."""
        added = await tx.execute(
            "INSERT OR IGNORE INTO forwarded_on (doc_id, forwarding_unit, cover_doc_id, units, forwarded_by,"
            " forwarded_at, origin_node) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item.doc_id, item.forwarding_unit, item.cover_doc_id, json.dumps(list(item.units)), item.forwarded_by,
             to_db_time(item.forwarded_at), item.origin_node))
        if added:
            await self._audit.append(tx, actor, "outbox.forwarded_on", {"doc_id": item.doc_id,
                                                                        "unit": item.forwarding_unit},
                                     {"cover_doc_id": item.cover_doc_id, "units": list(item.units),
                                      "by": item.forwarded_by})
        return bool(added)

    async def forwarded_on(self, doc_id: str, limit: int = 200) -> list[ForwardedOn]:
        rows = await self._db.fetchall(
            "SELECT doc_id, forwarding_unit, cover_doc_id, units, forwarded_by, forwarded_at, origin_node"
            " FROM forwarded_on WHERE doc_id = ? ORDER BY forwarded_at, forwarding_unit, cover_doc_id LIMIT ?",
            (doc_id, limit))
        return [ForwardedOn(r["doc_id"], r["forwarding_unit"], r["cover_doc_id"], tuple(json.loads(r["units"])),
                            r["forwarded_by"], from_db_time(r["forwarded_at"]), r["origin_node"])  # type: ignore[arg-type]
                for r in rows]


def _copy(r: Any) -> ForwardedCopy:
    return ForwardedCopy(r["doc_id"], r["unit"], r["cover_doc_id"], r["from_unit"], r["destination_node"], r["status"],
                         r["status_by"], from_db_time(r["status_at"]), r["reason"], from_db_time(r["created_at"]))  # type: ignore[arg-type]
