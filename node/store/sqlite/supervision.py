"""督办 in SQLite: the marks on received rows and the items supervising units hold (migration 10).

Implements :class:`node.store.supervision.SupervisionStore`. Every write appends its audit event
in the same transaction (what adapters follow: ``inbox.overdue``, ``inbox.escalated``,
``supervision.escalated``); "once" is a compare-and-set on the mark, so a sweep that runs twice,
or two sweeps racing, or a restart between them never escalates a row twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from node.store.sqlite.audit import AuditLog
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time
from node.store.supervision import LateRow, SupervisionItem, SupervisionMark

_MARK_COLUMNS = "doc_id, unit, overdue_noted_at, escalated_at, supervisor, working_days_late, settled_at"
_ITEM_COLUMNS = ("id, doc_id, unit, supervisor, sent_by, title, deadline, escalated_at, working_days_late,"
                 " origin_node, received_at, settled_at, settled_by, settled_as")


class Supervision:
    def __init__(self, db: Database, audit: AuditLog, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    # --- the late unit's side --------------------------------------------------------------------
    async def late_rows(self, now: datetime, unsettled: Sequence[str], limit: int = 500,
                        after: tuple[datetime, str, str] | None = None) -> list[LateRow]:
        marks = ",".join("?" * len(unsettled))
        cursor, params = "", []
        if after is not None:
            cursor = " AND (i.deadline, i.doc_id, i.unit_code) > (?, ?, ?)"
            params = [to_db_time(after[0]), after[1], after[2]]
        rows = await self._db.fetchall(
            "SELECT i.doc_id, i.unit_code, i.from_unit, i.title, i.status, i.deadline,"
            " m.overdue_noted_at, m.escalated_at FROM inbox i"
            " LEFT JOIN supervision_marks m ON m.doc_id = i.doc_id AND m.unit = i.unit_code"
            f" WHERE i.status IN ({marks}) AND i.deadline IS NOT NULL AND i.deadline < ?"
            f" AND m.escalated_at IS NULL{cursor} ORDER BY i.deadline, i.doc_id, i.unit_code LIMIT ?",
            (*unsettled, to_db_time(now), *params, limit))
        return [LateRow(r["doc_id"], r["unit_code"], r["from_unit"], r["title"], r["status"],
                        from_db_time(r["deadline"]), from_db_time(r["overdue_noted_at"]),  # type: ignore[arg-type]
                        from_db_time(r["escalated_at"])) for r in rows]

    async def marks_for(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], SupervisionMark]:
        found: dict[tuple[str, str], SupervisionMark] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 400):  # SQLite's limit on bound parameters
            chunk = wanted[start:start + 400]
            where = " OR ".join("(doc_id = ? AND unit = ?)" for _ in chunk)
            rows = await self._db.fetchall(f"SELECT {_MARK_COLUMNS} FROM supervision_marks WHERE {where}",
                                           [v for key in chunk for v in key])
            for r in rows:
                found[(r["doc_id"], r["unit"])] = _mark(r)
        return found

    async def note_overdue(self, tx: SqliteTransaction, doc_id: str, unit: str, at: datetime,
                           details: dict[str, Any]) -> bool:
        await tx.execute("INSERT OR IGNORE INTO supervision_marks (doc_id, unit) VALUES (?, ?)", (doc_id, unit))
        changed = await tx.execute(
            "UPDATE supervision_marks SET overdue_noted_at = ? WHERE doc_id = ? AND unit = ?"
            " AND overdue_noted_at IS NULL", (to_db_time(at), doc_id, unit))
        if changed:
            await self._audit.append(tx, "node", "inbox.overdue", {"doc_id": doc_id, "unit": unit}, details)
        return bool(changed)

    async def note_no_supervisor(self, tx: SqliteTransaction, doc_id: str, unit: str, at: datetime) -> bool:
        await tx.execute("INSERT OR IGNORE INTO supervision_marks (doc_id, unit) VALUES (?, ?)", (doc_id, unit))
        return bool(await tx.execute(
            "UPDATE supervision_marks SET no_supervisor_at = ? WHERE doc_id = ? AND unit = ?"
            " AND no_supervisor_at IS NULL", (to_db_time(at), doc_id, unit)))

    async def mark_escalated(self, tx: SqliteTransaction, doc_id: str, unit: str, at: datetime,
                             supervisor: str, working_days_late: int, unsettled: Sequence[str],
                             details: dict[str, Any]) -> bool:
        marks = ",".join("?" * len(unsettled))
        await tx.execute("INSERT OR IGNORE INTO supervision_marks (doc_id, unit) VALUES (?, ?)", (doc_id, unit))
        changed = await tx.execute(
            "UPDATE supervision_marks SET escalated_at = ?, supervisor = ?, working_days_late = ?"
            " WHERE doc_id = ? AND unit = ? AND escalated_at IS NULL AND EXISTS (SELECT 1 FROM inbox"
            f" WHERE inbox.doc_id = ? AND inbox.unit_code = ? AND inbox.status IN ({marks}))",
            (to_db_time(at), supervisor, working_days_late, doc_id, unit, doc_id, unit, *unsettled))
        if changed:
            await self._audit.append(tx, "node", "inbox.escalated", {"doc_id": doc_id, "unit": unit},
                                     {**details, "supervisor": supervisor, "working_days_late": working_days_late})
        return bool(changed)

    async def mark_settled(self, tx: SqliteTransaction, doc_id: str, unit: str, at: datetime) -> SupervisionMark | None:
        row = await tx.fetchone(f"SELECT {_MARK_COLUMNS} FROM supervision_marks WHERE doc_id = ? AND unit = ?"
                                " AND escalated_at IS NOT NULL", (doc_id, unit))
        if row is None:
            return None
        await tx.execute("UPDATE supervision_marks SET settled_at = ? WHERE doc_id = ? AND unit = ?"
                         " AND settled_at IS NULL", (to_db_time(at), doc_id, unit))
        return _mark(row)

    async def owe_settlement(self, tx: SqliteTransaction, doc_id: str, unit: str, payload: bytes) -> None:
        await tx.execute("UPDATE supervision_marks SET owed_settlement = ? WHERE doc_id = ? AND unit = ?",
                         (payload, doc_id, unit))

    async def owed_settlements(self, limit: int = 500) -> list[bytes]:
        rows = await self._db.fetchall("SELECT owed_settlement FROM supervision_marks"
                                       " WHERE owed_settlement IS NOT NULL LIMIT ?", (limit,))
        return [bytes(r["owed_settlement"]) for r in rows]

    async def settlement_sent(self, tx: SqliteTransaction, doc_id: str, unit: str) -> None:
        await tx.execute("UPDATE supervision_marks SET owed_settlement = NULL WHERE doc_id = ? AND unit = ?",
                         (doc_id, unit))

    # --- the supervising unit's side ----------------------------------------------------------------
    async def add_item(self, tx: SqliteTransaction, item: SupervisionItem, actor: str) -> bool:
        added = await tx.execute(
            "INSERT OR IGNORE INTO supervision_items (doc_id, unit, supervisor, sent_by, title, deadline,"
            " escalated_at, working_days_late, origin_node, received_at, settled_at, settled_by, settled_as)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item.doc_id, item.unit, item.supervisor, item.sent_by, item.title, to_db_time(item.deadline),
             to_db_time(item.escalated_at), item.working_days_late, item.origin_node, to_db_time(item.received_at),
             None if item.settled_at is None else to_db_time(item.settled_at), item.settled_by, item.settled_as))
        if added:
            await self._audit.append(
                tx, actor, "supervision.escalated", {"doc_id": item.doc_id, "unit": item.supervisor},
                {"late_unit": item.unit, "from_unit": item.sent_by, "title": item.title,
                 "deadline": item.deadline.isoformat(), "working_days_late": item.working_days_late,
                 "escalated_at": item.escalated_at.isoformat()})
        return bool(added)

    async def settle_item(self, tx: SqliteTransaction, doc_id: str, unit: str, supervisor: str, at: datetime,
                          by: str, settled_as: str, actor: str) -> bool:
        changed = await tx.execute(
            "UPDATE supervision_items SET settled_at = ?, settled_by = ?, settled_as = ?"
            " WHERE doc_id = ? AND unit = ? AND supervisor = ? AND settled_at IS NULL",
            (to_db_time(at), by, settled_as, doc_id, unit, supervisor))
        if changed:
            await self._audit.append(tx, actor, "supervision.settled", {"doc_id": doc_id, "unit": supervisor},
                                     {"late_unit": unit, "by": by, "settled_as": settled_as})
        return bool(changed)

    async def items(self, supervisor: str, *, settled: bool | None = None, limit: int = 50,
                    before_id: int | None = None) -> list[SupervisionItem]:
        return await self._items("supervisor = ?", [supervisor], settled, limit, before_id)

    async def items_of_units(self, units: Sequence[str], *, settled: bool | None = None, limit: int = 50,
                             before_id: int | None = None) -> list[SupervisionItem]:
        return await self._items(f"unit IN ({','.join('?' * len(units))})", list(units), settled, limit, before_id)

    async def _items(self, first: str, params: list[Any], settled: bool | None, limit: int,
                     before_id: int | None) -> list[SupervisionItem]:
        where = [first]
        if settled is not None:
            where.append("settled_at IS NOT NULL" if settled else "settled_at IS NULL")
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        rows = await self._db.fetchall(f"SELECT {_ITEM_COLUMNS} FROM supervision_items WHERE {' AND '.join(where)}"
                                       " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [SupervisionItem(
            doc_id=r["doc_id"], unit=r["unit"], supervisor=r["supervisor"], sent_by=r["sent_by"], title=r["title"],
            deadline=from_db_time(r["deadline"]), escalated_at=from_db_time(r["escalated_at"]),  # type: ignore[arg-type]
            working_days_late=r["working_days_late"], origin_node=r["origin_node"],
            received_at=from_db_time(r["received_at"]), settled_at=from_db_time(r["settled_at"]),  # type: ignore[arg-type]
            settled_by=r["settled_by"], settled_as=r["settled_as"], id=r["id"]) for r in rows]

    async def overdue_rows(self, units: Sequence[str], now: datetime, unsettled: Sequence[str], *, limit: int = 50,
                           after: tuple[datetime, str, str] | None = None) -> list[LateRow]:
        unit_marks, status_marks = ",".join("?" * len(units)), ",".join("?" * len(unsettled))
        cursor, params = "", []
        if after is not None:
            cursor = " AND (+i.deadline, i.doc_id, i.unit_code) > (?, ?, ?)"
            params = [to_db_time(after[0]), after[1], after[2]]
        # "+i.deadline" (also in the sort): a filter on inbox_folder's (unit, status) entries (the
        # deadline is in them), not a seek or a walk of inbox_status_deadline, which would read every
        # unit's late rows of the node. The supervised units' late rows are sorted (a temp b-tree).
        rows = await self._db.fetchall(
            "SELECT i.doc_id, i.unit_code, i.from_unit, i.title, i.status, i.deadline,"
            " m.overdue_noted_at, m.escalated_at FROM inbox i"
            " LEFT JOIN supervision_marks m ON m.doc_id = i.doc_id AND m.unit = i.unit_code"
            f" WHERE i.unit_code IN ({unit_marks}) AND i.status IN ({status_marks}) AND +i.deadline IS NOT NULL"
            f" AND +i.deadline < ?{cursor} ORDER BY +i.deadline, i.doc_id, i.unit_code LIMIT ?",
            (*units, *unsettled, to_db_time(now), *params, limit))
        return [LateRow(r["doc_id"], r["unit_code"], r["from_unit"], r["title"], r["status"],
                        from_db_time(r["deadline"]), from_db_time(r["overdue_noted_at"]),  # type: ignore[arg-type]
                        from_db_time(r["escalated_at"])) for r in rows]


def _mark(r: Any) -> SupervisionMark:
    return SupervisionMark(r["doc_id"], r["unit"], from_db_time(r["overdue_noted_at"]), from_db_time(r["escalated_at"]),
                           r["supervisor"], r["working_days_late"], from_db_time(r["settled_at"]))
