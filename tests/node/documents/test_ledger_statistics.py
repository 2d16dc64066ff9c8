"""The 台账 store queries and statistics on known rows: index use, keyset pages, numbers computed by hand.

Rows are written through the store's own interfaces (add_outbox / add_inbox / update_inbox) with a
hand-moved clock (the two 20,000-row tests copy their first add_inbox row in one batch past the store), so every time — received, signed, deadline — is chosen here and the expected
statistics are worked out independently below (not by the code under test). They run on both backends,
SQLite and PostgreSQL (tests/node/store/conftest.py), but for the one about SQLite's query plans.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import tracemalloc
from dataclasses import replace

import pytest

from exchange_protocol.states import ReceiverStatus
from node.api.auth import Principal
from node.documents import statistics
from node.documents.ledger import open_export
from node.store import InboxRow, LedgerQuery, OutboxDocument, OutboxRecipient, RegisterFacts
from node.store.sqlite.db import to_db_time
from tests.node.store.conftest import (  # noqa: F401 (both backends)
    open_store,
    pytest_generate_tests,
    raw_database,
    store_backend,
)
from tests.support import FakeClock

U_CITY = "91350100M000100Y43"
U_COUNTY = "11100000000013127D"
U_TOWN = "111000000000131358"
BEIJING = dt.timezone(dt.timedelta(hours=8))
CLERK = Principal("t1", "李四", "clerk", U_COUNTY)
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=BEIJING)  # a Monday, 09:00 Beijing


def _names(code: str) -> str | None:
    return {U_CITY: "市政府办公室"}.get(code)


async def _receive(store, clock, digest, n, at, *, deadline=None, sign_after=None, returned=False):
    clock.now = at.astimezone(dt.UTC)
    doc_id = f"D{n:03d}"
    await store.messages.add_inbox(InboxRow(
        doc_id=doc_id, unit=U_COUNTY, role="主送", from_unit=U_CITY, title=f"第{n}号通知", kind="通知",
        status="pending", package_digest=digest, received_at=clock.now, deadline=deadline,
        facts=RegisterFacts(doc_number=f"市政发〔2026〕{n}号", classification="非密", written_on=at.date(),
                            issuers=(U_CITY,))))
    if sign_after is not None:
        clock.now = at.astimezone(dt.UTC) + sign_after
        await store.messages.update_inbox(doc_id, U_COUNTY, ReceiverStatus.PENDING,
                                          {"status": "signed_for", "signed_by": "李四", "signed_at": clock.now},
                                          actor="clerk:李四")
    if returned:
        await store.messages.update_inbox(doc_id, U_COUNTY, ReceiverStatus.PENDING,
                                          {"status": "returned", "return_reason": "不属本单位"}, actor="clerk:李四")
    return doc_id


H = dt.timedelta(hours=1)


async def _many_inbox_rows(store, rows: list[InboxRow]) -> None:
    """The first row through the store's ``add_inbox``; the others copied from the columns it wrote,
    with the fields that differ, in one batch past the store (an operator's import). 20,000
    ``add_inbox`` calls are 40,000 round trips to PostgreSQL — minutes on a loaded machine — and
    statistics read the inbox table only (the other tests here go through ``add_inbox``)."""
    await store.messages.add_inbox(rows[0])

    def own(row: InboxRow) -> dict:
        def at(value):
            return None if value is None else to_db_time(value)
        return {"doc_id": row.doc_id, "status": row.status, "received_at": at(row.received_at),
                "deadline": at(row.deadline), "signed_by": row.signed_by, "signed_at": at(row.signed_at)}

    with raw_database(store.db.path) as raw:
        cursor = raw.execute("SELECT * FROM inbox WHERE doc_id = ?", [rows[0].doc_id])
        written = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
        del written["id"]
        assert {k: written[k] for k in own(rows[0])} == own(rows[0])  # the copies' formats are the store's
        columns = list(written)
        raw.executemany(f"INSERT INTO inbox ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                        [tuple({**written, **own(row)}.values()) for row in rows[1:]])


async def _known_rows(store, clock):
    digest = (await store.blobs.put(b"package")).digest
    due = T0 + 30 * H
    # Week of 2 March: five documents on Monday, two on Wednesday.
    await _receive(store, clock, digest, 1, T0, deadline=due, sign_after=1 * H)
    await _receive(store, clock, digest, 2, T0 + dt.timedelta(minutes=1), deadline=due, sign_after=2 * H)
    await _receive(store, clock, digest, 3, T0 + dt.timedelta(minutes=2), deadline=due, sign_after=40 * H)  # late
    await _receive(store, clock, digest, 4, T0 + dt.timedelta(minutes=3), deadline=due, returned=True)
    await _receive(store, clock, digest, 5, T0 + dt.timedelta(minutes=4), deadline=due)  # never signed: overdue
    wed = T0 + dt.timedelta(days=2)
    await _receive(store, clock, digest, 6, wed, sign_after=10 * H)
    await _receive(store, clock, digest, 7, wed + H)  # no deadline, unsigned: not overdue
    # Next week: one, signed in 4 h. A row of another unit must not count.
    await _receive(store, clock, digest, 8, T0 + dt.timedelta(days=7), deadline=T0 + dt.timedelta(days=9),
                   sign_after=4 * H)
    await store.messages.add_inbox(InboxRow(doc_id="OTHER", unit=U_TOWN, role="主送", from_unit=U_CITY,
                                            title="别人的", kind="通知", status="pending", package_digest=digest,
                                            received_at=clock.now))
    clock.now = (T0 + dt.timedelta(days=20)).astimezone(dt.UTC)


def test_statistics_per_week_and_day_match_numbers_worked_out_by_hand(tmp_path):
    async def main():
        clock = FakeClock(T0.astimezone(dt.UTC))
        async with open_store(tmp_path, clock=clock) as store:
            await _known_rows(store, clock)
            weekly = await statistics.compute(store, CLERK, "received", "week", [U_COUNTY, U_TOWN], _names,
                                              clock.now)
            first, second = weekly["rows"]
            # Week 1: 7 documents; signed after 1 h, 2 h, 40 h, 10 h → sorted 1, 2, 10, 40 h:
            # median (2 + 10) / 2 = 6 h; p90 by nearest rank: ceil(0.9 × 4) = 4th = 40 h.
            assert first["period_start"] == "2026-03-02" and first["unit"] == U_COUNTY
            assert (first["documents"], first["rows"], first["signed"]) == (7, 7, 4)
            assert first["sign_median_s"] == 6 * 3600 and first["sign_p90_s"] == 40 * 3600
            # Overdue: D3 signed after its deadline, D5 never signed and past it → 2 of 7.
            assert (first["overdue"], first["overdue_rate"]) == (2, round(2 / 7, 4))
            assert (first["returned"], first["returned_rate"]) == (1, round(1 / 7, 4))
            assert second["period_start"] == "2026-03-09" and second["documents"] == 1
            assert second["sign_median_s"] == second["sign_p90_s"] == 4 * 3600 and second["overdue"] == 0
            daily = await statistics.compute(store, CLERK, "received", "day", [U_COUNTY], _names, clock.now)
            # Every day from the first to the last with rows; the days between are zeros with null times.
            assert [(r["period_start"], r["documents"]) for r in daily["rows"]] == \
                [("2026-03-02", 5), ("2026-03-03", 0), ("2026-03-04", 2), ("2026-03-05", 0), ("2026-03-06", 0),
                 ("2026-03-07", 0), ("2026-03-08", 0), ("2026-03-09", 1)]
            empty = daily["rows"][1]
            assert (empty["rows"], empty["signed"], empty["overdue_rate"], empty["returned_rate"]) == (0, 0, 0.0, 0.0)
            assert empty["sign_median_s"] is None and empty["sign_p90_s"] is None
            # With from/to: every week of the range, before and after the rows too.
            ranged = await statistics.compute(store, CLERK, "received", "week", [U_COUNTY], _names, clock.now,
                                              date_from="2026-02-18", date_to="2026-03-16")
            assert [(r["period_start"], r["documents"]) for r in ranged["rows"]] == \
                [("2026-02-16", 0), ("2026-02-23", 0), ("2026-03-02", 7), ("2026-03-09", 1), ("2026-03-16", 0)]
            monthly = await statistics.compute(store, CLERK, "received", "month", [U_COUNTY], _names, clock.now,
                                               date_from="2026-03-03")
            # From 3 March: D6, D7, D8; signed after 10 h and 4 h → median 7 h, p90 = 10 h.
            (march,) = monthly["rows"]
            assert (march["documents"], march["sign_median_s"], march["sign_p90_s"]) == (3, 7 * 3600, 10 * 3600)
    asyncio.run(main())


def test_percentiles_by_their_definitions():
    assert statistics.median([]) is None and statistics.nearest_rank([], 90) is None
    assert statistics.nearest_rank([5.0], 90) == 5.0
    values = [float(v) for v in range(1, 11)]  # 1..10: 90 % of ten values is the 9th
    assert statistics.nearest_rank(values, 90) == 9.0 and statistics.median(values) == 5.5
    assert statistics.nearest_rank(list(range(1, 12)), 90) == 10  # ceil(9.9) = 10th of eleven


def test_ledger_pages_cover_every_row_once_across_page_boundaries_and_days(tmp_path):
    async def main():
        clock = FakeClock(T0.astimezone(dt.UTC))
        async with open_store(tmp_path, clock=clock) as store:
            digest = (await store.blobs.put(b"package")).digest
            for n in range(23):  # several documents sent in the same instant: the keyset must tell them apart
                clock.now = (T0 + dt.timedelta(hours=n // 4)).astimezone(dt.UTC)
                await store.messages.add_outbox(
                    OutboxDocument(doc_id=f"S{n:02d}", from_unit=U_CITY, title="t", kind="通知", package_digest=digest,
                                   created_at=clock.now),
                    [OutboxRecipient(unit=u, role="主送", status="queued") for u in (U_COUNTY, U_TOWN)], actor="x")
            query = LedgerQuery("sent", U_CITY, limit=5)
            seen = []
            while True:
                page = await store.ledger.page(query)
                seen += [(r.doc_id, r.unit) for r in page.rows]
                if page.next_after is None:
                    break
                query = replace(query, after=page.next_after)
            assert seen == [(f"S{n:02d}", u) for n in range(23) for u in sorted((U_COUNTY, U_TOWN))]
            assert await store.ledger.count(LedgerQuery("sent", U_CITY)) == 46
    asyncio.run(main())


@pytest.mark.sqlite_only  # SQLite's query plans
def test_ledger_queries_read_their_index_and_sort_nothing(tmp_path):
    async def main():
        async with open_store(tmp_path) as store:
            start, end = T0, T0 + dt.timedelta(days=31)
            for side, counterpart, status in (("sent", U_COUNTY, "signed_for"), ("received", U_CITY, "pending")):
                plain = LedgerQuery(side, U_CITY)
                full = LedgerQuery(side, U_CITY, start=start, end=end, kind="通知", counterpart=counterpart, upto_id=9,
                                   status=status, after=("2026-03-02T01:00:00.000000Z", 7, U_TOWN)[:3 if side == "sent" else 2])
                index = "outbox_ledger" if side == "sent" else "inbox_ledger"
                for query in (plain, full):
                    plan = await store.ledger.plan(query)
                    assert any(f"USING INDEX {index}" in step for step in plan), plan
                    assert not any("SCAN" in step or "TEMP B-TREE" in step for step in plan), plan
                plan = await store.ledger.plan(full)
                assert any("created_at>?" in s or "received_at>?" in s for s in plan), plan  # the range seeks
    asyncio.run(main())


def test_export_checks_the_scope_before_reading(tmp_path):
    async def main():
        clock = FakeClock(T0.astimezone(dt.UTC))
        async with open_store(tmp_path, clock=clock) as store:
            await _known_rows(store, clock)
            export = await open_export(store, CLERK, "received", _names, clock.now, date_from="2026-03-04")
            assert export.rows == 3
            rows = [row async for page in export.pages() for row in page]
            assert [r[0] for r in rows] == ["D006", "D007", "D008"]
            assert rows[0][3] == "市政府办公室" and rows[0][1] == "市政发〔2026〕6号"
    asyncio.run(main())


def test_sent_statistics_by_counterpart_tell_each_recipient_apart(tmp_path):
    async def main():
        clock = FakeClock(T0.astimezone(dt.UTC))
        city = Principal("t2", "张三", "clerk", U_CITY)
        async with open_store(tmp_path, clock=clock) as store:
            digest = (await store.blobs.put(b"package")).digest
            # Three documents to the county and the town. The county signs after 1 h, 3 h and 5 h; the town
            # signs the first after 20 h, returns the second and leaves the third (due at T0 + 10 h) unsigned.
            county = [1 * H, 3 * H, 5 * H]
            for n in range(3):
                at = T0 + n * dt.timedelta(minutes=10)
                town = (dict(status="signed_for", who="王五", when=at + 20 * H) if n == 0 else
                        dict(status="returned", who="王五", when=at + H, reason="不属本单位") if n == 1 else
                        dict(status="delivered"))
                await store.messages.add_outbox(
                    OutboxDocument(doc_id=f"S{n}", from_unit=U_CITY, title="t", kind="通知", package_digest=digest,
                                   created_at=at, deadline=T0 + 10 * H),
                    [OutboxRecipient(unit=U_COUNTY, role="主送", status="signed_for", who="李四", when=at + county[n]),
                     OutboxRecipient(unit=U_TOWN, role="抄送", **town)], actor="x")
            now = T0 + dt.timedelta(days=1)
            whole = await statistics.compute(store, city, "sent", "month", [U_CITY], _names, now)
            (row,) = whole["rows"]
            # 6 rows of 3 documents; signed after 1, 3, 5, 20 h → median 4 h, p90 = 4th of 4 = 20 h;
            # overdue: the town's 20 h 签收 (past T0 + 10 h) and its unsigned third → 2 of 6; returned 1 of 6.
            assert (row["documents"], row["rows"], row["signed"], row["counterpart"]) == (3, 6, 4, None)
            assert (row["sign_median_s"], row["sign_p90_s"]) == (4 * 3600, 20 * 3600)
            assert (row["overdue"], row["returned"]) == (2, 1)
            split = await statistics.compute(store, city, "sent", "month", [U_CITY], _names, now, by="counterpart")
            by = {r["counterpart"]: r for r in split["rows"]}
            assert set(by) == {U_COUNTY, U_TOWN} and split["by"] == "counterpart"
            assert (by[U_COUNTY]["documents"], by[U_COUNTY]["sign_median_s"], by[U_COUNTY]["sign_p90_s"]) == \
                (3, 3 * 3600, 5 * 3600)
            assert by[U_COUNTY]["overdue"] == 0 and by[U_COUNTY]["unit"] == U_CITY
            assert (by[U_TOWN]["signed"], by[U_TOWN]["sign_median_s"], by[U_TOWN]["overdue_rate"]) == \
                (1, 20 * 3600, round(2 / 3, 4))
            assert by[U_TOWN]["returned_rate"] == round(1 / 3, 4)
    asyncio.run(main())


# Times near Beijing midnight, where the Beijing date differs from the UTC one (UTC+8): each must fall
# on its Beijing day, week (Sunday 23:30 vs Monday 00:30) and month, and in or out of a from/to range.
NEAR_MIDNIGHT = (
    ("M1", dt.datetime(2026, 3, 2, 23, 59, tzinfo=BEIJING)),  # 15:59 UTC, same date
    ("M2", dt.datetime(2026, 3, 3, 7, 30, tzinfo=BEIJING)),  # 2 March 23:30 UTC
    ("M3", dt.datetime(2026, 3, 5, 23, 59, tzinfo=BEIJING)),  # the last minute of a --to day
    ("M4", dt.datetime(2026, 3, 6, 0, 0, 30, tzinfo=BEIJING)),  # 5 March 16:00 UTC: after --to 2026-03-05
    ("M5", dt.datetime(2026, 3, 8, 23, 30, tzinfo=BEIJING)),  # Sunday: still the week of 2 March
    ("M6", dt.datetime(2026, 3, 9, 0, 30, tzinfo=BEIJING)),  # Monday 00:30, a Sunday in UTC: the next week
    ("M7", dt.datetime(2026, 4, 1, 7, 30, tzinfo=BEIJING)),  # 31 March 23:30 UTC: April
)


async def _near_midnight_rows(store, side):
    digest = (await store.blobs.put(b"package")).digest
    for doc_id, at in NEAR_MIDNIGHT:
        if side == "received":
            await store.messages.add_inbox(InboxRow(
                doc_id=doc_id, unit=U_COUNTY, role="主送", from_unit=U_CITY, title="t", kind="通知",
                status="pending", package_digest=digest, received_at=at.astimezone(dt.UTC)))
        else:
            await store.messages.add_outbox(
                OutboxDocument(doc_id=doc_id, from_unit=U_COUNTY, title="t", kind="通知", package_digest=digest,
                               created_at=at.astimezone(dt.UTC)),
                [OutboxRecipient(unit=U_CITY, role="主送", status="delivered")], actor="x")


@pytest.mark.parametrize("side", ["received", "sent"])
def test_days_weeks_months_and_ranges_are_beijing_ones(tmp_path, side):
    async def main():
        now = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
        async with open_store(tmp_path) as store:
            await _near_midnight_rows(store, side)

            async def counts(period, **filters):
                answer = await statistics.compute(store, CLERK, side, period, [U_COUNTY], _names, now, **filters)
                return [(r["period_start"], r["documents"]) for r in answer["rows"] if r["documents"]]

            assert await counts("day") == [("2026-03-02", 1), ("2026-03-03", 1), ("2026-03-05", 1),
                                           ("2026-03-06", 1), ("2026-03-08", 1), ("2026-03-09", 1), ("2026-04-01", 1)]
            assert await counts("week") == [("2026-03-02", 5), ("2026-03-09", 1), ("2026-03-30", 1)]
            assert await counts("month") == [("2026-03-01", 6), ("2026-04-01", 1)]
            assert await counts("month", date_from="2026-03-03", date_to="2026-03-05") == [("2026-03-01", 2)]
            export = await open_export(store, CLERK, side, _names, now, date_from="2026-03-03", date_to="2026-03-05")
            rows = [row async for page in export.pages() for row in page]
            assert export.rows == 2 and [r[0] for r in rows] == ["M2", "M3"]
            assert rows[0][9] == dt.datetime(2026, 3, 3, 7, 30)  # 收文/发文时间 shown in Beijing time
    asyncio.run(main())


def test_statistics_of_many_rows_leave_the_event_loop_free(tmp_path):
    """The node serves everyone from one event loop: statistics over a large ledger must be counted
    by the store (its own thread), not row by row on the loop. The loop's own CPU time is measured
    (thread_time: the calling thread only), so a busy machine does not change the verdict: about
    0.2 s counted row by row on the loop, a few milliseconds counted by SQLite."""
    n = 20000

    async def main():
        async with open_store(tmp_path) as store:
            digest = (await store.blobs.put(b"package")).digest
            rows = []
            for i in range(n):
                at = (T0 + dt.timedelta(minutes=i)).astimezone(dt.UTC)
                signed = i % 2 == 0
                rows.append(InboxRow(
                    doc_id=f"N{i:05d}", unit=U_COUNTY, role="主送", from_unit=U_CITY, title="t", kind="通知",
                    status="signed_for" if signed else "pending", package_digest=digest, received_at=at,
                    deadline=at + 2 * H, signed_by="李四" if signed else None,
                    signed_at=at + (3 if i % 4 == 0 else 1) * H if signed else None))
            await _many_inbox_rows(store, rows)
            now = T0 + dt.timedelta(days=30)
            started = time.thread_time()
            answer = await statistics.compute(store, CLERK, "received", "month", [U_COUNTY], _names, now)
            loop_cpu = time.thread_time() - started
            total = [r for r in answer["rows"] if r["documents"]]
            assert sum(r["documents"] for r in total) == n and sum(r["signed"] for r in total) == n // 2
            # Half signed, half of those after 3 h (past the 2 h deadline), the other half unsigned and past it.
            assert sum(r["overdue"] for r in total) == n // 4 + n // 2
            assert loop_cpu < 0.05, f"{loop_cpu:.3f} s of the event loop's CPU for {n} rows"
    asyncio.run(main())


def test_statistics_bring_back_a_number_per_signed_row_not_a_row(tmp_path):
    """The signed rows' intervals come back as numbers per group, not as a result row each: the
    memory a statistics request takes stays near a float per signed row (tracemalloc counts every
    thread's allocations, the store's reader thread's too)."""
    n = 20000

    async def main():
        async with open_store(tmp_path) as store:
            digest = (await store.blobs.put(b"package")).digest
            await _many_inbox_rows(store, [InboxRow(
                doc_id=f"N{i:05d}", unit=U_COUNTY, role="主送", from_unit=U_CITY, title="t", kind="通知",
                status="signed_for", package_digest=digest, received_at=at, signed_by="李四",
                signed_at=at + (1 + i % 5) * H)
                for i in range(n) for at in [(T0 + dt.timedelta(minutes=i)).astimezone(dt.UTC)]])
            tracemalloc.start()
            try:
                answer = await statistics.compute(store, CLERK, "received", "month", [U_COUNTY], _names, T0)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert sum(r["signed"] for r in answer["rows"]) == n
            assert peak < 100 * n, f"{peak / n:.0f} bytes per signed row"  # a result row each: 220
    asyncio.run(main())
