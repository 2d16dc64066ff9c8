"""The 台账's query plan on PostgreSQL (node/store/postgresql/ledger.py): ``Ledger.plan`` gives
PostgreSQL's own plan (``EXPLAIN (FORMAT JSON)``), and on a ledger of many units' rows a page seeks in
the side's ledger index — no sequential scan, no sort of the unit's rows — as SQLite's plan does
(tests/node/documents/test_ledger_statistics.py). One difference: PostgreSQL's index ends at the
time column (SQLite's carries the rowid), so rows of one instant are put in id order by an
incremental sort over the time-ordered index scan."""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg

from node.store import InboxRow, LedgerQuery, OutboxDocument, OutboxRecipient
from node.store.postgresql import Store
from tests.support import T0, FakeClock

UNITS = [f"1137130{n:02d}MB0000001" for n in range(40)]
ROWS_PER_UNIT = 250


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
        " AND is_generated = 'NEVER' AND column_name <> 'id' ORDER BY ordinal_position", (table,))]


def _multiply(dsn: str, table: str, unit_col: str, time_col: str) -> None:
    """Copies of the table's one row: ROWS_PER_UNIT rows for each of UNITS, an hour apart (an
    operator's bulk load, past the store: the plan is what is tested, not the writes)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        columns = _columns(conn, table)
        made = {"doc_id": "t.doc_id || '-' || u.unit || '-' || g", unit_col: "u.unit",
                time_col: f"to_char((t.{time_col}::timestamptz + (g || ' hours')::interval) AT TIME ZONE 'UTC',"
                          " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"}
        select = ", ".join(made.get(c, f"t.{c}") for c in columns)
        conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} FROM {table} t,"
                     f" unnest(%s::text[]) AS u(unit), generate_series(1, %s) AS g", (UNITS, ROWS_PER_UNIT))
        if table == "outbox":  # each copy's recipients, as the one document's
            columns = _columns(conn, "outbox_recipients")
            select = ", ".join("o.doc_id" if c == "doc_id" else f"r.{c}" for c in columns)
            conn.execute(f"INSERT INTO outbox_recipients ({', '.join(columns)}) SELECT {select}"
                         " FROM outbox o, outbox_recipients r WHERE r.doc_id = 'S' AND o.doc_id LIKE 'S-%'")
        conn.execute("ANALYZE")


def test_a_ledger_page_on_postgresql_seeks_in_its_index(tmp_path, postgres_server):
    dsn = postgres_server.new_database()

    async def main() -> dict[str, list[str]]:
        clock = FakeClock(T0)
        store = await Store.open(tmp_path, dsn=dsn, clock=clock)
        try:
            digest = (await store.blobs.put(b"package")).digest
            await store.messages.add_outbox(
                OutboxDocument(doc_id="S", from_unit=UNITS[0], title="t", kind="通知", package_digest=digest,
                               created_at=clock.now),
                [OutboxRecipient(unit=u, role="主送", status="queued") for u in UNITS[1:3]], actor="x")
            await store.messages.add_inbox(InboxRow(doc_id="R", unit=UNITS[1], role="主送", from_unit=UNITS[0],
                                                    title="t", kind="通知", status="pending", package_digest=digest,
                                                    received_at=clock.now))
            _multiply(dsn, "outbox", "from_unit", "created_at")
            _multiply(dsn, "inbox", "unit_code", "received_at")
            start, end = T0, T0 + dt.timedelta(days=5)
            plans = {}
            for side in ("sent", "received"):
                plans[side] = await store.ledger.plan(LedgerQuery(side, UNITS[7], start=start, end=end, kind="通知",
                                                                  limit=50))
                page = await store.ledger.page(LedgerQuery(side, UNITS[7], start=start, end=end, limit=50))
                assert len(page.rows) == 50 and {r.unit if side == "received" else r.from_unit
                                                 for r in page.rows} == {UNITS[7]}
            return plans
        finally:
            await store.close()
    try:
        plans = asyncio.run(main())
    finally:
        postgres_server.drop_database(dsn)
    for side, index, time in (("sent", "outbox_ledger", "o.created_at"), ("received", "inbox_ledger", "received_at")):
        plan = plans[side]
        assert plan[0] == "Limit", plan  # PostgreSQL's words, not SQLite's
        assert any(f"Index Scan using {index}" in step and "Index Cond" in step and "_at >=" in step
                   for step in plan), plan  # the unit and the date range seek
        assert not any("Seq Scan" in step for step in plan), plan
        # PostgreSQL's index has no rowid at its end: the rows come in time order and only rows of
        # one instant are put in id order (an incremental sort), never the unit's rows as a whole.
        assert not any(step.strip().startswith("Sort") for step in plan), plan
        assert all(f"(presorted {time})" in step for step in plan if "Incremental Sort" in step), plan
