"""Migration 12 on a store that already holds documents: old rows stay in the ledgers, their new
cells empty; rows written afterwards carry every register fact."""

from __future__ import annotations

import asyncio
import datetime as dt

from node.store import InboxRow, LedgerQuery, RegisterFacts
from node.store.sqlite.db import Database, to_db_time
from node.store.sqlite.migrations import MIGRATIONS, migrate
from tests.node.store.conftest import open_store
from tests.support import T0, FakeClock

U_CITY = "91350100M000100Y43"
U_COUNTY = "11100000000013127D"
DIGEST = "ab" * 32


def test_rows_from_before_migration_12_are_in_the_ledger_with_empty_register_cells(tmp_path):
    async def main():
        db = await Database.open(tmp_path / "gwx.db")
        try:
            await migrate(db, T0, tuple(m for m in MIGRATIONS if m.version < 12))
            async with db.transaction() as tx:  # a row as an older gwx wrote it
                await tx.execute(
                    "INSERT INTO inbox (doc_id, unit_code, role, from_unit, title, kind, urgency, status,"
                    " package_digest, received_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    ("OLD-1", U_COUNTY, "主送", U_CITY, "旧的通知", "通知", "加急", "pending", DIGEST,
                     to_db_time(T0), to_db_time(T0)))
        finally:
            await db.close()
        clock = FakeClock(T0 + dt.timedelta(hours=1))
        async with open_store(tmp_path, clock=clock, recover=False) as store:  # migrates to 12
            await store.messages.add_inbox(InboxRow(
                doc_id="NEW-1", unit=U_COUNTY, role="主送", from_unit=U_CITY, title="新的通知", kind="通知",
                status="pending", package_digest=DIGEST, received_at=clock.now, urgency="特急",
                facts=RegisterFacts(doc_number="临政发〔2026〕1号", urgency="特急", classification="非密",
                                    written_on=dt.date(2026, 3, 1), issuers=(U_CITY,))))
            old, new = (await store.ledger.page(LedgerQuery("received", U_COUNTY))).rows
            assert (old.doc_id, old.facts) == ("OLD-1", RegisterFacts(urgency="加急"))  # the inbox had urgency
            assert new.facts == RegisterFacts("临政发〔2026〕1号", "特急", "非密", dt.date(2026, 3, 1), (U_CITY,))
    asyncio.run(main())
