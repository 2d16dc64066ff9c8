"""Every list query of the console and the 台账 reads an index, never a whole big table (issue 10, Figures).

A county node's real document service over a store filled as bench/console.py fills one (a
county's received rows, the city's sent documents to a dozen counties, through the store's own
interfaces), and a 通知 to 300 units. Each query the console's folders (every folder and filter,
paging, search), its counts, the 发文 list, a document's tracking and its track page, the 台账
export, the statistics, the 督办 list and a supervisor's list of its units send to SQLite is recorded with its parameters as it runs, then asked for its
``EXPLAIN QUERY PLAN``: a step that SCANs a big table (not SEARCHes it by an index) fails the test,
named with the query. A query added later to these paths is checked without a change here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import re
import sys

import pytest
from multidict import MultiDict

from node.api.auth import Principal
from node.console import folders
from node.documents import statistics, supervised, track_page
from node.documents.ledger import open_export
from node.store import OutboxDocument, OutboxRecipient
from node.store.sqlite.db import SqliteTransaction
from pki.unit_code import make_unit_code
from tests.node.documents.service_support import County
from tests.node.federation.federation_support import provision_county_and_city
from tests.support import REPO

# Tables that grow with the documents a node handles: reading one whole is what this test refuses.
BIG = {"inbox", "outbox", "outbox_recipients", "audit", "supervision_marks", "supervision_items", "forwarded",
       "forwarded_in", "received", "queue", "drafts", "outgoing", "adapter_outbox"}
_NAMED = re.compile(r"\b(?:FROM|JOIN)\s+([a-z_]+)(?:\s+(?:AS\s+)?([a-z]\w*))?", re.I)
_SCAN = re.compile(r"^SCAN (\w+)")
_NOT_ALIASES = {"where", "on", "group", "order", "limit", "join", "left", "inner", "using", "natural", "cross"}


def _bench():
    saved = list(sys.path)  # the script puts the repository root first in sys.path when loaded
    spec = importlib.util.spec_from_file_location("bench_console", REPO / "bench" / "console.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


bench = _bench()


def tables_of(sql: str) -> dict[str, str]:
    """Each name a query's FROM/JOIN gives a table by (alias or the table's own) → the table."""
    names: dict[str, str] = {}
    for table, alias in _NAMED.findall(sql):
        names[table.lower()] = table.lower()
        if alias and alias.lower() not in _NOT_ALIASES:
            names[alias.lower()] = table.lower()
    return names


def big_scans(sql: str, plan: list[str]) -> list[str]:
    """The plan's steps that read a whole big table (or the whole of one of its indexes)."""
    names = tables_of(sql)
    return [step for step in plan
            if (m := _SCAN.match(step)) and names.get(m.group(1).lower(), m.group(1).lower()) in BIG]


# What a step on each of these tables must seek by: the unit's own rows (or one document's), never
# every unit's rows of a status — a node may host hundreds of units.
UNIT_KEYS = {"inbox": ("unit_code=", "doc_id=", "rowid="), "outbox": ("from_unit=", "doc_id="),
             "outbox_recipients": ("doc_id=",)}
_STEP = re.compile(r"^(?:SEARCH|SCAN) (\w+)")
# A 台账 page is read in its index's order: a sort would read every row of the unit for each page.
_LEDGER_PAGE = ("ORDER BY i.received_at, i.id LIMIT", "ORDER BY o.created_at, o.id, r.unit_code LIMIT")


def other_units_rows(sql: str, plan: list[str]) -> list[str]:
    """The plan's steps on inbox, outbox or outbox_recipients that do not seek by the unit (or document)."""
    names = tables_of(sql)
    out = []
    for step in plan:
        m = _STEP.match(step)
        table = names.get(m.group(1).lower(), m.group(1).lower()) if m else None
        if "(" not in step and step.startswith("SEARCH"):
            continue  # MIN/MAX of the key: one entry read
        if table in UNIT_KEYS and not any(key in step.split("(", 1)[-1] for key in UNIT_KEYS[table]):
            out.append(step)
    return out


def sorted_ledger_page(sql: str, plan: list[str]) -> bool:
    return any(order in sql for order in _LEDGER_PAGE) and any("TEMP B-TREE" in step for step in plan)


class Recorder:
    """Every read the store sends to SQLite, with its parameters (the real call still made): through
    the database, and inside a transaction (a list query moved into one is checked all the same)."""

    def __init__(self, db, monkeypatch) -> None:
        self.db, self.queries = db, {}
        for name in ("fetchall", "fetchone", "lookup"):  # lookup_one reads through lookup
            setattr(db, name, self._spy(getattr(db, name)))
            monkeypatch.setattr(SqliteTransaction, name, self._spy_method(getattr(SqliteTransaction, name)))

    def _spy(self, call):
        async def recorded(sql, params=()):
            self.queries.setdefault(" ".join(sql.split()), tuple(params))
            return await call(sql, params)
        return recorded

    def _spy_method(self, method):
        async def recorded(tx, sql, params=()):
            self.queries.setdefault(" ".join(sql.split()), tuple(params))
            return await method(tx, sql, params)
        return recorded

    async def plans(self) -> dict[str, list[str]]:
        queries = dict(self.queries)  # the EXPLAINs below are recorded too
        return {sql: [r["detail"] for r in await self.db.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)]
                for sql, params in queries.items() if sql.upper().startswith(("SELECT", "WITH"))}


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    return provision_county_and_city(tmp_path_factory.mktemp("plans"), "台账查询计划CA",
                                     {bench.COUNTY: "兰山区人民政府办公室", bench.CITY: "临沂市人民政府办公室"}, {})


def test_the_tables_a_plan_step_scans_are_found_through_aliases():
    sql = "SELECT i.* FROM inbox i JOIN supervision_marks AS m ON m.doc_id = i.doc_id WHERE i.unit_code = ?"
    assert big_scans(sql, ["SCAN i", "SEARCH m USING PRIMARY KEY (doc_id=?)"]) == ["SCAN i"]
    assert big_scans(sql, ["SCAN m USING INDEX x"]) == ["SCAN m USING INDEX x"]  # a whole index is a scan
    assert big_scans(sql, ["SEARCH i USING INDEX inbox_unit (unit_code=?)"]) == []
    assert big_scans("SELECT COUNT(*) FROM outbox_recipients WHERE status = ?", ["SCAN outbox_recipients"])
    assert big_scans("SELECT * FROM schema_version", ["SCAN schema_version"]) == []  # a small table
    assert other_units_rows(sql, ["SEARCH i USING INDEX inbox_status (status=?)"])  # every unit's pending rows
    assert not other_units_rows(sql, ["SEARCH i USING INDEX inbox_folder (unit_code=? AND status=?)",
                                      "SEARCH m USING PRIMARY KEY (doc_id=?)", "SEARCH i"])
    assert other_units_rows("SELECT * FROM outbox o JOIN outbox_recipients r ON r.doc_id = o.doc_id",
                            ["SEARCH r USING INDEX outbox_recipients_status (status=?)"])
    page = "SELECT i.id FROM inbox i WHERE i.unit_code = ? ORDER BY i.received_at, i.id LIMIT ?"
    assert sorted_ledger_page(page, ["SEARCH i USING INDEX inbox_unit (unit_code=?)", "USE TEMP B-TREE FOR ORDER BY"])
    assert not sorted_ledger_page(page, ["SEARCH i USING INDEX inbox_ledger (unit_code=?)"])


def test_every_console_and_ledger_list_query_reads_an_index(node_dir, tmp_path, monkeypatch):
    county_clerk = Principal("t-county", "李四", "clerk", bench.COUNTY)
    city_clerk = Principal("t-city", "张三", "clerk", bench.CITY)
    supervisor = Principal("t-sup", "王主任", "supervisor", bench.CITY, units=tuple(bench.COUNTIES))

    async def main():
        data = tmp_path / "data"
        await bench.fill(data, 1200)
        county = await County.open(node_dir, data)
        try:
            store, service = county.store, county.service
            wide = await _wide_document(store)
            counter = Recorder(store.db, monkeypatch)
            await service.folder_counts(county_clerk)
            counts = await counter.plans()
            recorder = Recorder(store.db, monkeypatch)
            day = "2026-06-01"
            for query in ({}, *({"folder": f} for f in folders.FOLDERS), {"folder": "all", "kind": "函"},
                          {"folder": "pending", "urgency": "加急"}, {"folder": "all", "from": bench.CITY},
                          {"folder": "all", "since": day, "until": "2026-06-30"}, {"folder": "all", "q": "第77批"},
                          {"folder": "signed_for", "q": "〔2026〕7号"}, {"folder": "pending", "after": "600"}):
                await folders.received(service, county_clerk, MultiDict(query))
            for query in ({}, {"kind": "通知"}, {"to": bench.COUNTY}, {"since": day}, {"q": "第12批"},
                          {"after": "50"}):
                await folders.sent(service, city_clerk, MultiDict(query))
            await service.outbox(city_clerk, status="returned")
            await service.outbox(city_clerk, overdue=True)
            await service.track(city_clerk, wide)
            await service.track(city_clerk, wide, recipients=False)
            for status in (None, *track_page.TRACK_FILTERS):  # the track page, each filter, then page 2
                page = await service.track_page(city_clerk, wide, status=status, limit=20)
                if page["next"]:
                    await service.track_page(city_clerk, wide, status=status, after=page["next"], limit=20)
            for state in supervised.STATES:  # the supervisor's lists, then their next page
                for unit in (None, bench.COUNTY):
                    page = await service.supervised(supervisor, state, unit=unit, limit=5)
                    if page["next"]:
                        await service.supervised(supervisor, state, unit=unit, after=page["next"], limit=5)
            await service.supervision(county_clerk)
            await service.supervision(county_clerk, settled=False)
            await service.track_page(city_clerk, wide, after=make_unit_code("11371300MC0000100"), limit=50)
            now = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
            for side, who, filters in (("received", county_clerk, {}), ("sent", city_clerk, {"kind": "通知"}),
                                       ("received", county_clerk, {"status": "pending", "date_from": day})):
                export = await open_export(store, who, side, bench._names, now, **filters)
                async for _ in export.pages():
                    pass
            for side, who, by in (("received", county_clerk, "unit"), ("sent", city_clerk, "counterpart")):
                await statistics.compute(store, who, side, "month", [who.unit], bench._names, now, by=by)
                await statistics.compute(store, who, side, "month", [who.unit], bench._names, now, by=by,
                                         unit=who.unit)
            return await recorder.plans(), counts
        finally:
            await county.close()

    plans, counts = asyncio.run(main())
    assert len(plans) >= 12, list(plans)  # the paths above did reach the store
    assert any("FROM inbox" in sql for sql in plans) and any("outbox_recipients" in sql for sql in plans)
    _refuse("SCAN a big table", {sql: plan for sql, plan in plans.items() if big_scans(sql, plan)})
    _refuse("read other units' rows", {sql: plan for sql, plan in plans.items() if other_units_rows(sql, plan)})
    _refuse("sort a 台账 page", {sql: plan for sql, plan in plans.items() if sorted_ledger_page(sql, plan)})
    # A search in a unit's whole inbox tries the texts in inbox_search's entries (only the hits' rows
    # are read), chosen by the planner — no query names an index (INDEXED BY: a renamed index would
    # make every search an SQL error); within one folder it reads that folder's rows (inbox_folder).
    searches = {sql: plan for sql, plan in plans.items() if "LIKE" in sql and "FROM inbox" in sql}
    whole = {sql: plan for sql, plan in searches.items() if "status" not in sql}
    assert whole and all(any("INDEX inbox_search (unit_code=?)" in s for s in p) for p in whole.values()), whole
    assert all(any("INDEX inbox_folder (unit_code=? AND status=?)" in s for s in p)
               for sql, p in searches.items() if sql not in whole), searches
    assert not any("INDEXED BY" in sql.upper() for sql in plans), "a query names an index"
    # The folders' counts (on every page) are counted from an index alone, not from 100,000 rows.
    assert counts and all(_index_only(plan) for plan in counts.values()), counts


def _index_only(plan: list[str]) -> bool:
    return all("COVERING INDEX" in step or "PRIMARY KEY" in step for step in plan if step.startswith("SEARCH"))


def _refuse(what: str, bad: dict[str, list[str]]) -> None:
    assert not bad, f"queries that {what}:\n" + "\n\n".join(f"{sql}\n  -> {' | '.join(p)}" for sql, p in bad.items())


async def _wide_document(store) -> str:
    """The city's 通知 to 300 units (for its tracking)."""
    digest = (await store.blobs.put(b"stand-in package")).digest
    at = dt.datetime(2026, 11, 20, 1, 0, tzinfo=dt.UTC)
    doc = OutboxDocument(doc_id="wide-notice-0001", from_unit=bench.CITY, title="关于全市统一行动的通知", kind="通知",
                         package_digest=digest, created_at=at, doc_number="临政办发〔2026〕900号")
    recipients = [OutboxRecipient(unit=make_unit_code(f"11371300MC{k:07d}"), role="主送", destination_node="n",
                                  status=("signed_for", "delivered", "returned")[k % 3]) for k in range(300)]
    async with store.transaction() as tx:
        await store.messages.add_outbox(doc, recipients, actor="test", tx=tx)
    return doc.doc_id


def test_a_search_finds_the_number_in_its_column_or_for_an_older_row_in_its_report(tmp_path):
    """The 发文字号 search reads the column register facts filled since migration 12, and the
    verification report only for a row from before it (its column empty)."""
    from node.store import InboxRow, ListFilter, RegisterFacts
    from tests.node.store.conftest import open_store

    at = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)

    async def main():
        async with open_store(tmp_path / "node") as store:
            digest = (await store.blobs.put(b"package")).digest
            for doc_id, facts, report in (
                    ("NEW-1", RegisterFacts(doc_number="临政办发〔2026〕31号"), {"doc_number": "临政办发〔2026〕31号"}),
                    ("OLD-1", None, {"doc_number": "临政办发〔2025〕9号"}),  # from before migration 12
                    ("NEW-2", RegisterFacts(doc_number="临政办函〔2026〕7号"), {"doc_number": "临政办函〔2026〕7号"})):
                await store.messages.add_inbox(InboxRow(
                    doc_id=doc_id, unit=bench.COUNTY, role="主送", from_unit=bench.CITY, title="关于工作的通知",
                    kind="通知", status="pending", package_digest=digest, received_at=at, facts=facts,
                    verification=report))

            async def found(text):
                page = await store.messages.list_inbox(ListFilter(unit=bench.COUNTY, search=text))
                return sorted(r.doc_id for r in page.items)
            return [await found(t) for t in ("〔2026〕31号", "〔2025〕9号", "办函", "〔2024〕")]
    assert asyncio.run(main()) == [["NEW-1"], ["OLD-1"], ["NEW-2"], []]


def test_a_message_is_found_by_its_id_not_among_every_row_of_the_unit(tmp_path, monkeypatch):
    """A 转发's cover is looked up by its message as the forward arrives, and a forwarded document's page
    names its cover: both read one index entry, not every row the unit ever received (they did: the
    unit's prefix of inbox_ledger, then message_id checked in each row). And no query of these paths
    needs inbox_status (status, id), which migration 18 drops."""
    from tests.node.store.conftest import open_store

    async def main():
        async with open_store(tmp_path / "node") as store:
            recorder = Recorder(store.db, monkeypatch)
            await store.messages.inbox_for_message("01a22e2c-d9eb-748e-b750-78e6e039dbec", bench.COUNTY)
            await store.forwards.received("NEW-1", bench.COUNTY)
            indexes = {r[0] for r in await store.db.fetchall("SELECT name FROM sqlite_master WHERE type = 'index'")}
            return await recorder.plans(), indexes
    plans, indexes = asyncio.run(main())
    reads = [step for plan in plans.values() for step in plan if re.match(r"(SEARCH|SCAN) (inbox|i)\b", step)]
    assert len(reads) == 2 and all("INDEX inbox_message (message_id=? AND unit_code=?)" in s for s in reads), plans
    assert "inbox_status" not in indexes and "inbox_message" in indexes
