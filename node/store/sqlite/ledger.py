"""The 台账 queries: one unit's sent or received rows over a date range, in pages, oldest first.

A ledger may hold every document a unit ever exchanged, so it is never read whole: each page is one
query that seeks in an index (migration 12: ``outbox_ledger (from_unit, created_at)`` and
``inbox_ledger (unit_code, received_at)``, whose entries end with the rowid = ``id``) and continues
after the last row of the previous page (keyset: time, id, and for the sent side the recipient's
unit code). The date range is a range on that index; 文种, status and the counterpart filter the
rows the range yields. :meth:`Ledger.tally` counts the statistics' groups in SQL (GROUP BY the local
date of the stored time, shifted by the zone's offset), reading only the signed rows' intervals
back. :meth:`Ledger.plan` gives SQLite's ``EXPLAIN QUERY PLAN`` of a page's query,
for the tests and the benchmark to see that it reads the index and sorts nothing (PostgreSQL's
plan: :mod:`node.store.postgresql.ledger`).

The sent side is one row per recipient (``outbox`` joined with ``outbox_recipients`` on its primary
key, so a document's recipients come in unit-code order without a sort).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import date
from typing import Any

from node.store.sqlite.db import Database, from_db_time, to_db_time
from node.store.values import (
    LEDGER_SENT,
    LedgerPage,
    LedgerQuery,
    LedgerRow,
    LedgerTally,
    LedgerTallyRules,
    RegisterFacts,
)

_SENT_SELECT = (
    "SELECT o.id, o.doc_id, o.title, o.kind, o.from_unit, o.created_at AS at, o.deadline, o.doc_number,"
    " o.urgency, o.classification, o.written_on, o.issuers, r.unit_code AS unit, r.role, r.status,"
    " r.status_by AS who, r.status_at AS at_when, r.reason"
    " FROM outbox o JOIN outbox_recipients r ON r.doc_id = o.doc_id")
_RECEIVED_SELECT = (
    "SELECT i.id, i.doc_id, i.title, i.kind, i.from_unit, i.received_at AS at, i.deadline, i.doc_number,"
    " i.urgency, i.classification, i.written_on, i.issuers, i.unit_code AS unit, i.role, i.status,"
    " i.signed_by AS who, i.signed_at AS at_when, i.return_reason AS reason FROM inbox i")


def facts_columns(facts: RegisterFacts) -> tuple[Any, ...]:
    """(doc_number, urgency, classification, written_on, issuers) as the columns store them."""
    return (facts.doc_number, facts.urgency, facts.classification,
            facts.written_on.isoformat() if facts.written_on else None,
            json.dumps(list(facts.issuers), ensure_ascii=False) if facts.issuers else None)


def _query(q: LedgerQuery) -> tuple[str, list[Any]]:
    sent = q.side == LEDGER_SENT
    t, time_col = ("o", "o.created_at") if sent else ("i", "i.received_at")
    where = ["o.from_unit = ?" if sent else "i.unit_code = ?"]
    params: list[Any] = [q.unit]
    if q.start is not None:
        where.append(f"{time_col} >= ?")
        params.append(to_db_time(q.start))
    if q.end is not None:
        where.append(f"{time_col} < ?")
        params.append(to_db_time(q.end))
    if q.upto_id is not None:
        # "+": a filter, not a seek — as a seek (inbox_search's unit, id) it won over the ledger
        # index, and the first page sorted every row of the unit to return 1,000.
        where.append(f"+{t}.id <= ?")
        params.append(q.upto_id)
    if q.kind is not None:
        where.append(f"{t}.kind = ?")
        params.append(q.kind)
    if q.status is not None:
        where.append("r.status = ?" if sent else "i.status = ?")
        params.append(q.status)
    if q.counterpart is not None:
        where.append("r.unit_code = ?" if sent else "i.from_unit = ?")
        params.append(q.counterpart)
    if q.after is not None:
        # Keyset written so that its first term is a range on the index's time column (a row-value
        # comparison across two tables would not seek).
        at = q.after[0]
        if sent:
            where.append(f"{time_col} >= ? AND ({time_col} > ? OR o.id > ? OR (o.id = ? AND r.unit_code > ?))")
            params += [at, at, q.after[1], q.after[1], q.after[2]]
        else:
            where.append(f"{time_col} >= ? AND ({time_col} > ? OR i.id > ?)")
            params += [at, at, q.after[1]]
    order = "o.created_at, o.id, r.unit_code" if sent else "i.received_at, i.id"
    sql = f"{_SENT_SELECT if sent else _RECEIVED_SELECT} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
    return sql, [*params, q.limit]


# A stored time ('2026-03-02T01:00:00.000000Z') shifted to local time, rounded down to its period.
_PERIOD_MODIFIERS = {"day": (), "week": ("-6 days", "weekday 1"), "month": ("start of month",)}


def _period_sql(rules: LedgerTallyRules) -> tuple[str, list[str]]:
    modifiers = [f"{int(rules.offset.total_seconds()) // 60:+d} minutes", *_PERIOD_MODIFIERS[rules.period]]
    return f"date(at{', ?' * len(modifiers)})", modifiers


def _in(values: frozenset[str]) -> tuple[str, list[str]]:
    return f"({', '.join('?' * len(values)) or 'NULL'})", sorted(values)


def _tally_sql(query: LedgerQuery, rules: LedgerTallyRules) -> tuple[str, list[Any], str, list[Any]]:
    """The groups' counts, and the signed rows' intervals, over the rows of ``query`` (all pages)."""
    rows_sql, params = _query(replace(query, after=None))
    rows_sql, params = rows_sql.rsplit(" ORDER BY", 1)[0], params[:-1]
    other = ("unit" if query.side == LEDGER_SENT else "from_unit") if rules.by_counterpart else "NULL"
    period, period_params = _period_sql(rules)
    signed, signed_params = _in(rules.signed)
    unsigned, unsigned_params = _in(rules.overdue_unsigned)
    counts = (f"SELECT {other} AS other, {period} AS period, COUNT(DISTINCT doc_id) AS documents, COUNT(*) AS rows,"
              f" SUM(deadline IS NOT NULL AND CASE WHEN status IN {signed} THEN at_when IS NOT NULL"
              f" AND at_when > deadline WHEN status IN {unsigned} THEN deadline < ? ELSE false END) AS overdue,"
              f" SUM(status = ?) AS returned FROM ({rows_sql}) GROUP BY 1, 2 ORDER BY 1, 2")
    counts_params = [*period_params, *signed_params, *unsigned_params, to_db_time(rules.now), rules.returned,
                     *params]
    # One text of comma-separated seconds per group (not a result row per signed row: a fraction of
    # the memory for a large ledger).
    intervals = (f"SELECT other, period, group_concat(seconds) AS seconds FROM ("
                 f"SELECT {other} AS other, {period} AS period,"
                 f" MAX(ROUND((julianday(at_when) - julianday(at)) * 86400.0, 3), 0.0) AS seconds"
                 # "+status": the unit's rows are reached by the unit, not through every unit's
                 # recipients of that status (outbox_recipients_status).
                 f" FROM ({rows_sql}) WHERE +status IN {signed} AND at_when IS NOT NULL) GROUP BY 1, 2")
    return counts, counts_params, intervals, [*period_params, *params, *signed_params]


def _row(side: str, r: Any) -> LedgerRow:
    written_on = r["written_on"]
    facts = RegisterFacts(doc_number=r["doc_number"], urgency=r["urgency"], classification=r["classification"],
                          written_on=date.fromisoformat(written_on) if written_on else None,
                          issuers=tuple(json.loads(r["issuers"])) if r["issuers"] else ())
    return LedgerRow(side=side, doc_id=r["doc_id"], title=r["title"], kind=r["kind"], from_unit=r["from_unit"],
                     unit=r["unit"], role=r["role"], status=r["status"], at=from_db_time(r["at"]),  # type: ignore[arg-type]
                     deadline=from_db_time(r["deadline"]), facts=facts, who=r["who"],
                     when=from_db_time(r["at_when"]), reason=r["reason"])


class Ledger:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(self, query: LedgerQuery) -> LedgerPage:
        sql, params = _query(query)
        rows = await self._db.fetchall(sql, params)
        out = [_row(query.side, r) for r in rows]
        if len(rows) < query.limit:
            return LedgerPage(out, None)
        last = rows[-1]
        key = (last["at"], last["id"], last["unit"]) if query.side == LEDGER_SENT else (last["at"], last["id"])
        return LedgerPage(out, key)

    async def count(self, query: LedgerQuery) -> int:
        """How many rows the query yields over all its pages (for a progress indicator)."""
        sql, params = _query(query)
        row = await self._db.fetchone(f"SELECT COUNT(*) FROM ({sql.rsplit(' ORDER BY', 1)[0]})", params[:-1])
        return int(row[0])

    async def tally(self, query: LedgerQuery, rules: LedgerTallyRules) -> list[LedgerTally]:
        """The statistics' groups of ``query``'s rows: counted by SQLite, only the signed rows'
        intervals (a float each) read back; in the reader's thread, so the event loop stays free."""
        counts_sql, counts_params, intervals_sql, intervals_params = _tally_sql(query, rules)
        groups = await self._db.fetchall(counts_sql, counts_params)
        # Parsed a line at a time (split would make a string per number first, all at once).
        spans = {(r["other"], r["period"]): sorted(map(float, io.StringIO(r["seconds"].replace(",", "\n"))))
                 for r in await self._db.fetchall(intervals_sql, intervals_params)}
        return [LedgerTally(counterpart=g["other"], period_start=date.fromisoformat(g["period"]),
                            documents=g["documents"], rows=g["rows"], overdue=g["overdue"], returned=g["returned"],
                            intervals=spans.get((g["other"], g["period"]), [])) for g in groups]

    async def last_id(self, side: str) -> int:
        """The newest document row's id on ``side`` (0 when none): a ledger pinned to it
        (``LedgerQuery.upto_id``) leaves out documents stored after it."""
        row = await self._db.fetchone(f"SELECT MAX(id) FROM {'outbox' if side == LEDGER_SENT else 'inbox'}")
        return int(row[0] or 0)

    async def plan(self, query: LedgerQuery) -> list[str]:
        """SQLite's EXPLAIN QUERY PLAN of one page of ``query``, one line per step."""
        sql, params = _query(query)
        return [r["detail"] for r in await self._db.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)]
