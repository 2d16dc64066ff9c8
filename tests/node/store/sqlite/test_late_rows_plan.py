"""The supervisor's 超期 list (``Supervision.overdue_rows``, node.documents.supervised) reads the late
rows of its own units through an index that starts with the unit: a node hosting hundreds of units
must not walk every unit's late rows (``inbox_status_deadline``, status then deadline) to find the
few of the units one supervisor watches. Checked on a real store with EXPLAIN QUERY PLAN."""

from __future__ import annotations

import asyncio
import datetime as dt

from node.store import InboxRow
from pki.unit_code import make_unit_code
from tests.node.store.conftest import open_store
from tests.support import FakeClock

UNITS = [make_unit_code(f"11370000MB{i:07d}") for i in range(60)]
UNSETTLED = ("pending",)


class Recorder:
    """The reads the store sends to SQLite with their parameters (the real call still made)."""

    def __init__(self, db) -> None:
        self.db, self.queries = db, []
        self.call = db.fetchall
        db.fetchall = self.fetchall

    async def fetchall(self, sql, params=()):
        self.queries.append((sql, tuple(params)))
        return await self.call(sql, params)

    async def plan(self, sql: str, params) -> list[str]:
        return [r["detail"] for r in await self.call(f"EXPLAIN QUERY PLAN {sql}", params)]


def test_the_late_rows_of_a_supervisors_units_are_sought_by_unit_not_through_every_units_late_rows(tmp_path):
    clock = FakeClock()

    async def main():
        async with open_store(tmp_path / "node.db", clock=clock) as store:
            now = clock()
            digest = (await store.blobs.put(b"package")).digest
            async with store.transaction() as tx:
                for n in range(3000):  # 50 documents to each of 60 units; most late and unsigned
                    unit = UNITS[n % len(UNITS)]
                    await store.messages.add_inbox(InboxRow(
                        doc_id=f"gwx-late-{n:05d}", unit=unit, role="主送", from_unit=UNITS[0], title=f"第{n}号",
                        kind="通知", status="pending" if n % 5 else "signed_for", package_digest=digest,
                        received_at=now - dt.timedelta(days=30), deadline=now - dt.timedelta(days=n % 20 + 1)),
                        tx=tx)
            recorder = Recorder(store.db)
            watched = UNITS[3:5]
            rows = await store.supervision.overdue_rows(watched, now, UNSETTLED, limit=10)
            assert [r.unit for r in rows] and {r.unit for r in rows} <= set(watched)
            assert [r.deadline for r in rows] == sorted(r.deadline for r in rows)  # oldest deadline first
            (sql, params), = recorder.queries
            steps = await recorder.plan(sql, params)
            on_inbox = [s for s in steps if s.startswith(("SEARCH i ", "SCAN i"))]
            assert on_inbox and all("unit_code=?" in s for s in on_inbox), steps
            assert not any("inbox_status_deadline" in s for s in steps), steps
            # the supervised units' open rows, their deadline read from inbox_folder's entries (migration 16)
            assert any("inbox_folder" in s for s in on_inbox), steps

    asyncio.run(main())
