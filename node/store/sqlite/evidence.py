"""签收/退回 statements in SQLite (migration 14). Implements :class:`node.store.evidence.EvidenceStore`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from node.store.evidence import NoticeEvidence
from node.store.sqlite.db import Database, SqliteTransaction, from_db_time, to_db_time

_COLUMNS = "doc_id, unit, type, side, at, statement, sha256, recorded_at"


class Evidence:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    async def add(self, tx: SqliteTransaction, items: Sequence[NoticeEvidence]) -> None:
        now = to_db_time(self._clock())
        await tx.executemany(
            f"INSERT OR IGNORE INTO notice_evidence ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(e.doc_id, e.unit, e.type, e.side, to_db_time(e.at), e.statement, e.sha256, now) for e in items])

    async def notice_evidence(self, doc_id: str) -> list[NoticeEvidence]:
        rows = await self._db.fetchall(f"SELECT {_COLUMNS} FROM notice_evidence WHERE doc_id = ?"
                                       " ORDER BY at, unit, side, id", (doc_id,))
        return [_evidence(r) for r in rows]


def _evidence(r: Any) -> NoticeEvidence:
    return NoticeEvidence(r["doc_id"], r["unit"], r["type"], r["side"], from_db_time(r["at"]), bytes(r["statement"]),
                          r["sha256"], from_db_time(r["recorded_at"]))
